import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A client that asks for ~500 MB and does not read: back-pressure reaches main's backend, the
/// proxy's memory stays bounded, others are served; then every row arrives, or the client leaves
/// and everything it held is released.
final class HostileSlowReaderTests: HostileTestCase {
    static let rows = 500_000
    static let sql = "SELECT repeat('x', 1000) FROM generate_series(1, \(rows))"

    /// Starts the big query on a fresh socket and waits until main's backend is blocked writing to
    /// the proxy (pg_stat_activity wait_event ClientWrite): the proxy stopped reading it.
    private func startStalledReader(_ proxy: ProxyProcess, _ watch: HostileWatch, app: String) throws -> HostileSocket {
        let socket = try HostileSocket(port: proxy.port)
        socket.send(HostileWire.startup(application: watch.applicationName(app)))
        let login = socket.readMessages(until: "Z")
        XCTAssertTrue(login.contains { $0.typeChar == "Z" }, "\(login)")
        socket.send(RawWire.query(Self.sql))
        waitUntil("main's backend blocked writing to the proxy", timeout: 120, interval: 0.1) {
            let rows = (try? watch.sessions(.replica, app: app)) ?? []
            return rows.contains { $0[1] == "active" && $0[2] == "ClientWrite" }
        }
        return socket
    }

    /// Samples the proxy's VmRSS for a while (the client still reads nothing), serving normal
    /// clients in between; returns the highest sample in kB.
    private func sampleWhileStalled(_ proxy: ProxyProcess, _ watch: HostileWatch, app: String) -> Int {
        var peak = 0
        for i in 0..<30 {
            peak = max(peak, HostileProc.rssKB(proxy.pid))
            if i % 10 == 0 { watch.assertNormalClientWorks("normal\(i)") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        // Still stalled: nothing has been dropped or finished behind the client's back.
        let rows = (try? watch.sessions(.replica, app: app)) ?? []
        XCTAssertTrue(rows.contains { $0[1] == "active" }, "the big query should still be running: \(rows)")
        return peak
    }

    func testSlowReaderStaysBoundedThenGetsEveryRow() throws {
        let (proxy, watch) = try startHostile()
        let socket = try startStalledReader(proxy, watch, app: "slow")
        let stalledPeak = sampleWhileStalled(proxy, watch, app: "slow")

        var counter = HostileMessageCounter()
        let closed = hostileDrain(socket.fd, into: &counter, timeout: 600) { $0.sawReadyForQuery }
        XCTAssertFalse(closed, "the proxy closed the slow reader")
        XCTAssertEqual(counter.counts["D"], Self.rows, "every row")
        // A DataRow body: column count (2) + length (4) + 1000 bytes.
        XCTAssertEqual(counter.dataRowBytes, Self.rows * 1006, "every byte")
        XCTAssertEqual(HostileWire.tags(counter.kept), ["SELECT \(Self.rows)"])
        XCTAssertEqual(HostileWire.errorCodes(counter.kept), [])
        let peak = HostileProc.peakRSSKB(proxy.pid)
        print("hostile: slow reader: \(counter.totalBytes) bytes received; proxy VmRSS baseline \(watch.rssBaselineKB) kB, highest while stalled \(stalledPeak) kB, lifetime peak (VmHWM) \(peak) kB")
        XCTAssertLessThan(peak, 200 * 1024, "the proxy's memory should stay bounded while streaming ~500 MB")
        socket.send(RawWire.terminate)
        watch.assertNormalClientWorks("normal_after")
        watch.assertBackToBaseline()
    }

    func testSlowReaderThatDisconnects() throws {
        let (proxy, watch) = try startHostile()
        let socket = try startStalledReader(proxy, watch, app: "gone")
        _ = sampleWhileStalled(proxy, watch, app: "gone")
        // Read a little, then vanish with a reset.
        var counter = HostileMessageCounter()
        hostileDrain(socket.fd, into: &counter, timeout: 30) { $0.totalBytes > 1 << 20 }
        socket.abort()
        waitUntil("main's backend for the vanished reader is gone") {
            ((try? watch.sessions(.replica, app: "gone")) ?? [["?"]]).isEmpty
        }
        print("hostile: vanished reader: peak VmHWM \(HostileProc.peakRSSKB(proxy.pid)) kB")
        watch.assertNormalClientWorks("normal_after")
        watch.assertBackToBaseline()
    }

    func testSlowReaderThatHalfClosesAndNeverReads() throws {
        // FIN from the client (it will send nothing more) while it reads nothing: the session is
        // over, so its backend must be released even though the unread answer cannot be delivered.
        let (proxy, watch) = try startHostile()
        let socket = try startStalledReader(proxy, watch, app: "half")
        socket.halfClose()
        waitUntil("main's backend for the half-closed reader is gone", timeout: 60) {
            ((try? watch.sessions(.replica, app: "half")) ?? [["?"]]).isEmpty
        }
        watch.assertNormalClientWorks("normal_after")
        socket.abort()
        watch.assertBackToBaseline()
    }
}
