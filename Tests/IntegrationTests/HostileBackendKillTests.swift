import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A backend terminated (pg_terminate_backend) under a running statement or a COPY: the client gets
/// an ErrorResponse, not a hang; other sessions are unaffected; nothing stays open.
final class HostileBackendKillTests: HostileTestCase {
    private func terminate(_ server: TestCluster.Server, pid: String) throws {
        let su = try cluster.superuser(server)
        defer { su.finish() }
        XCTAssertEqual(try su.scalar("SELECT pg_terminate_backend(\(pid))"), "t")
    }

    /// The pid of this test's backend on `server` that is running a statement containing `text`.
    private func activeBackend(_ watch: HostileWatch, _ server: TestCluster.Server, app: String, running text: String) -> String? {
        var pid: String?
        waitUntil("\(app)'s statement running on \(server)", timeout: 60) {
            let rows = (try? watch.sessions(server, app: app)) ?? []
            pid = rows.first { $0[1] == "active" && ($0[3] ?? "").contains(text) }?[0] ?? nil
            return pid != nil
        }
        return pid
    }

    func testBackendTerminatedMidQuery() throws {
        let (_, watch) = try startHostile()
        let bystander = try PQConnection(watch.conninfo(app: "bystander"))
        XCTAssertEqual(try bystander.query("SELECT inet_server_port()::text"), [[replica]])
        for (server, sql) in [(TestCluster.Server.replica, "SELECT pg_sleep(30)"),
                              (.primary, "/* pgsplit: writeable */ SELECT pg_sleep(30)")] {
            let app = "kill_\(server.rawValue)"
            let victim = try OpsClient(watch.conninfo(app: app))
            let outcome = HostileBackground { try victim.run(sql) }
            guard let pid = activeBackend(watch, server, app: app, running: "pg_sleep") else { continue }
            try terminate(server, pid: pid)
            waitUntil("the victim on \(server) got an answer", timeout: 60) { outcome.isDone }
            // libpq's PQexec reports the lost connection, not the FATAL's SQLSTATE, even straight
            // from PostgreSQL; the bytes are checked in testBackendTerminatedMidQueryRawBytes.
            let state = hostileSQLState(outcome.result)
            guard case .failure? = outcome.result else {
                XCTFail("\(server): the statement should fail, got \(String(describing: outcome.result))")
                continue
            }
            // What the victim's session does next (either answer is acceptable; reported).
            let next = Result { try victim.run("SELECT 1") }
            print("hostile: after its \(server) backend was terminated the client got \(state ?? "-"); its next statement: \(next.map { $0.rows })")
            victim.finish()
            // The bystander never noticed.
            XCTAssertEqual(try bystander.query("SELECT inet_server_port()::text, sum(g)::text FROM generate_series(1, 100) g"),
                           [[replica, "5050"]])
        }
        bystander.finish()
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    /// The server ends a session on its own (idle_in_transaction_session_timeout, or a terminated
    /// backend under a running statement): the client gets the server's one FATAL, with its SQLSTATE
    /// (25P03 / 57P01), and nothing of the proxy's after it.
    func testTheServersFatalReachesTheClientOnce() throws {
        let (proxy, watch) = try startHostile()
        let socket = try HostileSocket(port: proxy.port)
        socket.send(HostileWire.startup(application: watch.applicationName("idle_tx")))
        _ = socket.readMessages(until: "Z")
        socket.send(RawWire.query("SET idle_in_transaction_session_timeout = '300ms'"))
        _ = socket.readMessages(until: "Z")
        socket.send(RawWire.query("BEGIN; SELECT txid_current() > 0"))
        _ = socket.readMessages(until: "Z")
        var counter = HostileMessageCounter()
        let closed = hostileDrain(socket.fd, into: &counter, timeout: 60) { _ in false }
        XCTAssertTrue(closed, "the proxy closes the client once the server ended its transaction's session")
        XCTAssertEqual(HostileWire.errorCodes(counter.kept), ["25P03"], "\(counter.kept)")
        socket.abort()

        let victim = try HostileSocket(port: proxy.port)
        let app = "one_fatal"
        victim.send(HostileWire.startup(application: watch.applicationName(app)))
        _ = victim.readMessages(until: "Z")
        victim.send(RawWire.query("SELECT pg_sleep(30)"))
        if let pid = activeBackend(watch, .replica, app: app, running: "pg_sleep") {
            try terminate(.replica, pid: pid)
            var killed = HostileMessageCounter()
            _ = hostileDrain(victim.fd, into: &killed, timeout: 60) { _ in false }
            XCTAssertEqual(HostileWire.errorCodes(killed.kept), ["57P01"], "\(killed.kept)")
        }
        victim.abort()
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testBackendTerminatedMidQueryRawBytes() throws {
        // The same, read byte by byte: what exactly does the proxy send?
        let (proxy, watch) = try startHostile()
        for server in [TestCluster.Server.replica, .primary] {
            let app = "rawkill_\(server.rawValue)"
            let socket = try HostileSocket(port: proxy.port)
            socket.send(HostileWire.startup(application: watch.applicationName(app)))
            _ = socket.readMessages(until: "Z")
            socket.send(RawWire.query(server == .replica ? "SELECT pg_sleep(30)" : "/* pgsplit: writeable */ SELECT pg_sleep(30)"))
            guard let pid = activeBackend(watch, server, app: app, running: "pg_sleep") else { continue }
            try terminate(server, pid: pid)
            var counter = HostileMessageCounter()
            let closed = hostileDrain(socket.fd, into: &counter, timeout: 60) { $0.sawReadyForQuery }
            print("hostile: \(server) backend terminated mid-query; the client got \(counter.kept), closed: \(closed)")
            let codes = HostileWire.errorCodes(counter.kept)
            XCTAssertTrue(codes.contains("57P01") || codes.contains("08006"), "\(server): \(counter.kept)")
            XCTAssertTrue(closed || counter.sawReadyForQuery, "\(server): neither closed nor ready")
            socket.abort()
        }
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }

    func testBackendTerminatedMidCopyFromStdin() throws {
        try makeTable("hostile_kill_copy")
        let (proxy, watch) = try startHostile()
        let socket = try HostileSocket(port: proxy.port)
        socket.send(HostileWire.startup(application: watch.applicationName("copy")))
        _ = socket.readMessages(until: "Z")
        socket.send(RawWire.query("COPY hostile_kill_copy(v) FROM STDIN"))
        let started = socket.readMessages(until: "G")
        XCTAssertTrue(started.contains { $0.typeChar == "G" }, "expected CopyInResponse: \(started)")
        for i in 0..<100 { socket.send(HostileWire.copyData("row \(i)\n")) }
        guard let pid = activeBackend(watch, .primary, app: "copy", running: "COPY") else { return }
        try terminate(.primary, pid: pid)
        // The client goes on with its COPY, unaware.
        for i in 100..<200 { socket.send(HostileWire.copyData("row \(i)\n")) }
        socket.send(HostileWire.copyDone)
        var counter = HostileMessageCounter()
        let closed = hostileDrain(socket.fd, into: &counter, timeout: 60) { $0.sawReadyForQuery }
        let codes = HostileWire.errorCodes(counter.kept)
        XCTAssertTrue(codes.contains("57P01") || codes.contains("08006"), "expected 57P01 or 08006: \(counter.kept)")
        XCTAssertTrue(closed || counter.sawReadyForQuery, "neither closed nor ready: \(counter.kept)")
        print("hostile: COPY whose backend was terminated: \(counter.kept), closed: \(closed)")
        XCTAssertEqual(try primaryCount("hostile_kill_copy"), 0)
        socket.abort()
        watch.assertNormalClientWorks()
        watch.assertBackToBaseline()
    }
}
