import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A 100 MB parameter goes through with the default max_message_size; CancelRequest with a wrong
/// key is ignored, with the right key cancels.
final class HostileBigAndCancelTests: HostileTestCase {
    func testHundredMegabyteParameterRoundTrip() throws {
        let (proxy, watch) = try startHostile()
        let size = 100 << 20
        let c = HostileUnchecked(try PQConnection(watch.conninfo(app: "big")))
        // libpq blocks while sending: run it on another thread, with a hang guard here.
        let outcome = HostileBackground {
            try c.value.queryParams("SELECT inet_server_port()::text, length($1)::text", [String(repeating: "a", count: size)])
        }
        waitUntil("the 100 MB parameter's answer", timeout: 120) { outcome.isDone }
        if !outcome.isDone {
            print("hostile: 100 MB parameter stuck; proxy VmRSS \(HostileProc.rssKB(proxy.pid)) kB; stderr:\n\(proxy.stderr.suffix(2000))")
            proxy.stop() // unblocks libpq
            waitUntil("libpq gave up after the proxy stopped", timeout: 60) { outcome.isDone }
            return
        }
        XCTAssertEqual(try outcome.result?.get(), [[replica, "\(size)"]])
        // And the session goes on.
        XCTAssertEqual(try c.value.query("SELECT 1::text"), [["1"]])
        print("hostile: 100 MB parameter: proxy VmHWM \(HostileProc.peakRSSKB(proxy.pid)) kB (baseline VmRSS \(watch.rssBaselineKB) kB)")
        // Messages of a size glibc would keep in its heap once freed (below its 32 MB ceiling for
        // mapped blocks): their memory goes back to the system too once they are passed on.
        for _ in 0..<2 {
            XCTAssertEqual(try c.value.queryParams("SELECT length($1)::text", [String(repeating: "b", count: 24 << 20)]),
                           [["\(24 << 20)"]])
        }
        var rss = 0
        waitUntil("the proxy's memory back near its baseline", timeout: 30) {
            rss = HostileProc.rssKB(proxy.pid)
            return rss < watch.rssBaselineKB + 16 * 1024
        }
        XCTAssertLessThan(rss, watch.rssBaselineKB + 16 * 1024, "VmRSS kB after the large messages (baseline \(watch.rssBaselineKB))")
        c.value.finish()
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testSixMegabyteExtendedBatchBeforeSync() throws {
        // A JDBC-style batch: one Parse, 3,000 Bind/Execute pairs of 2 kB each, then one Sync —
        // about 6 MB before the Sync that ends the unit.
        try makeTable("hostile_big_batch")
        let (proxy, watch) = try startHostile()
        let socket = HostileUnchecked(try HostileSocket(port: proxy.port))
        socket.value.send(HostileWire.startup(application: watch.applicationName("batch")))
        _ = socket.value.readMessages(until: "Z")
        let value = String(repeating: "v", count: 2048)
        var batch = HostileWire.parse("INSERT INTO hostile_big_batch(v) VALUES ($1)")
        for _ in 0..<3000 { batch += HostileWire.bind([value]) + HostileWire.execute() }
        batch += HostileWire.sync
        let payload = batch
        // A blocking send: on another thread, with a hang guard here.
        let sent = HostileBackground { socket.value.send(payload); return true }
        var counter = HostileMessageCounter()
        let closed = hostileDrain(socket.value.fd, into: &counter, timeout: 120) { $0.sawReadyForQuery }
        XCTAssertTrue(sent.isDone, "the proxy stopped reading the batch (\(batch.count) bytes)")
        XCTAssertFalse(closed)
        XCTAssertTrue(counter.sawReadyForQuery, "no ReadyForQuery after a \(batch.count)-byte batch; got \(counter.counts)")
        XCTAssertEqual(HostileWire.tags(counter.kept).count, 3000, "\(counter.counts)")
        XCTAssertEqual(try primaryCount("hostile_big_batch"), counter.sawReadyForQuery ? 3000 : 0)
        if !sent.isDone {
            print("hostile: 6 MB batch stuck; proxy VmRSS \(HostileProc.rssKB(proxy.pid)) kB")
            proxy.stop() // unblocks the sender
            waitUntil("the sender gave up", timeout: 60) { sent.isDone }
            socket.value.abort()
            return
        }
        socket.value.abort()
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    private func loggedIn(_ proxy: ProxyProcess, _ watch: HostileWatch, app: String) throws -> (RawClient, Int32, Int32) {
        let client = try RawClient(port: proxy.port)
        let login = client.hostileLogin(application: watch.applicationName(app))
        guard let (pid, key) = HostileWire.keyData(login) else {
            XCTFail("no BackendKeyData: \(login)")
            throw PQError(message: "no BackendKeyData", sqlState: nil)
        }
        return (client, pid, key)
    }

    private func sendCancel(_ proxy: ProxyProcess, pid: Int32, key: Int32) throws {
        let c = try RawClient(port: proxy.port)
        c.send(HostileWire.cancelRequest(processID: pid, secretKey: key))
        let reply = c.read(timeout: 30)
        XCTAssertTrue(c.closedByPeer, "the proxy closes a cancel connection")
        XCTAssertEqual(reply, [], "a CancelRequest gets no answer")
    }

    private func waitRunning(_ watch: HostileWatch, app: String) {
        waitUntil("\(app)'s pg_sleep running on main", timeout: 60) {
            let rows = (try? watch.sessions(.replica, app: app)) ?? []
            return rows.contains { $0[1] == "active" && ($0[3] ?? "").contains("pg_sleep") }
        }
    }

    func testCancelWithAWrongKeyIsIgnored() throws {
        let (proxy, watch) = try startHostile()
        let (client, pid, key) = try loggedIn(proxy, watch, app: "wrongkey")
        client.send(RawWire.query("SELECT pg_sleep(4)"))
        waitRunning(watch, app: "wrongkey")
        try sendCancel(proxy, pid: pid, key: key &+ 1)
        try sendCancel(proxy, pid: pid &+ 1, key: key)
        let messages = client.readMessages(until: "Z", timeout: 60)
        XCTAssertEqual(HostileWire.errorCodes(messages), [], "\(messages)")
        XCTAssertEqual(HostileWire.tags(messages), ["SELECT 1"], "\(messages)")
        client.send(RawWire.terminate)
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testCancelWithTheRightKeyCancels() throws {
        let (proxy, watch) = try startHostile()
        let (client, pid, key) = try loggedIn(proxy, watch, app: "rightkey")
        client.send(RawWire.query("SELECT pg_sleep(30)"))
        waitRunning(watch, app: "rightkey")
        try sendCancel(proxy, pid: pid, key: key)
        let messages = client.readMessages(until: "Z", timeout: 60)
        XCTAssertEqual(HostileWire.errorCodes(messages), ["57014"], "\(messages)")
        XCTAssertEqual(messages.last?.typeChar, "Z")
        // The session goes on.
        client.send(RawWire.query("SELECT 2"))
        let next = client.readMessages(until: "Z")
        XCTAssertEqual(HostileWire.tags(next), ["SELECT 1"], "\(next)")
        client.send(RawWire.terminate)
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }
}
