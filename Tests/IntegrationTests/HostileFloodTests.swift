import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// Connection floods: thousands of sockets that never speak are closed by client_login_timeout
/// while normal clients are served; max_client_conn refuses the connection past the limit with 53300.
final class HostileFloodTests: HostileTestCase {
    /// Waits until the proxy has closed every socket in `fds`; returns (closed with an
    /// ErrorResponse, SQLSTATEs seen, closed silently, still open).
    private func waitForProxyToClose(_ fds: [Int32], timeout: TimeInterval = 120) -> (errors: Int, codes: Set<String>, silent: Int, open: Int) {
        var open = Set(fds)
        var received: [Int32: [UInt8]] = [:]
        var errors = 0
        var silent = 0
        var codes: Set<String> = []
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !open.isEmpty && Date() < deadline {
            var pfds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let r = poll(&pfds, nfds_t(pfds.count), 200)
            if r <= 0 { continue }
            for p in pfds where p.revents != 0 {
                let n = chunk.withUnsafeMutableBytes { recv(p.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n > 0 {
                    received[p.fd, default: []] += chunk[0..<n]
                    continue
                }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                open.remove(p.fd)
                let found = HostileWire.errorCodes(RawWire.parse(received[p.fd] ?? []).messages)
                if found.isEmpty { silent += 1 } else { errors += 1; codes.formUnion(found) }
            }
        }
        return (errors, codes, silent, open.count)
    }

    func testTwoThousandSilentConnectionsAreClosedByTheLoginTimeout() throws {
        let (proxy, watch) = try startHostile(["client_login_timeout = 2s"])
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for batch in 0..<4 {
            for _ in 0..<500 { fds.append(try connectTCP(port: proxy.port)) }
            // Normal clients are served while the silent ones pile up.
            watch.assertNormalClientWorks("normal\(batch)")
        }
        print("hostile: 2000 silent sockets open; proxy descriptors \(HostileProc.fdCount(proxy.pid)) (baseline \(watch.fdBaseline))")
        watch.assertNormalClientWorks("normal_during")
        let outcome = waitForProxyToClose(fds)
        print("hostile: silent sockets closed by the proxy: \(outcome.errors) with an ErrorResponse \(outcome.codes), \(outcome.silent) without, \(outcome.open) still open")
        XCTAssertEqual(outcome.open, 0, "every silent connection should be closed by client_login_timeout")
        XCTAssertTrue(outcome.codes.isSubset(of: ["08006", "08P01"]), "\(outcome.codes)")
        fds.forEach { close($0) }
        fds = []
        watch.assertNormalClientWorks("normal_after")
        watch.assertBackToBaseline()
        XCTAssertTrue(proxy.isRunning)
    }

    func testMaxClientConnRefusesTheFiftyFirstLoggedInClient() throws {
        let (proxy, watch) = try startHostile(["max_client_conn = 50"])
        var clients: [PQConnection] = []
        for i in 0..<50 { clients.append(try PQConnection(watch.conninfo(app: "c\(i)"))) }
        XCTAssertEqual(try clients[49].query("SELECT inet_server_port()::text"), [[replica]])
        // The 51st: libpq sees 53300 (with its default sslmode=prefer, and without TLS); a raw
        // socket gets the ErrorResponse for its startup packet, as from PostgreSQL.
        for extra in ["", " sslmode=disable"] {
            XCTAssertThrowsError(try PQConnection(watch.conninfo(app: "c50") + extra)) { error in
                XCTAssertEqual((error as? PQError)?.sqlState, "53300", "libpq\(extra): \(error)")
            }
        }
        let raw = try RawClient(port: proxy.port)
        raw.send(RawWire.startup([("user", "app_rw"), ("database", "app")]))
        let messages = RawWire.parse(raw.read(timeout: 30)).messages
        XCTAssertEqual(HostileWire.errorCodes(messages), ["53300"], "\(messages)")
        XCTAssertTrue(raw.closedByPeer)
        // The ones inside keep working; one leaves and a newcomer gets its place.
        XCTAssertEqual(try clients[0].query("SELECT sum(g)::text FROM generate_series(1, 10) g"), [["55"]])
        clients.removeLast().finish()
        var newcomer: PQConnection?
        waitUntil("a place frees up") {
            newcomer = try? PQConnection(watch.conninfo(app: "late"))
            return newcomer != nil
        }
        XCTAssertEqual(try newcomer?.query("SELECT inet_server_port()::text"), [[replica]])
        newcomer?.finish()
        clients.forEach { $0.finish() }
        clients = []
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testMaxClientConnCountsConnectionsThatNeverSpeak() throws {
        // 50 sockets that never send a byte fill max_client_conn = 50: the 51st is refused with
        // 53300 (as PgBouncer's max_client_conn and PostgreSQL's max_connections count clients
        // still logging in), instead of a flood holding any number of descriptors.
        let (proxy, watch) = try startHostile(["max_client_conn = 50", "client_login_timeout = 60s"])
        var fds: [Int32] = []
        defer { fds.forEach { close($0) } }
        for _ in 0..<50 { fds.append(try connectTCP(port: proxy.port)) }
        waitUntil("the proxy holds the 50 silent sockets") { HostileProc.fdCount(proxy.pid) >= watch.fdBaseline + 50 }
        var refusal: PQError?
        do {
            let c = try PQConnection(watch.conninfo(app: "fifty_first"))
            c.finish()
        } catch let e as PQError {
            refusal = e
        }
        XCTAssertEqual(refusal?.sqlState, "53300",
                       "the 51st connection should be refused while 50 silent ones are open; got \(refusal.map { "\($0)" } ?? "a login")")
        fds.forEach { close($0) }
        fds = []
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }
}
