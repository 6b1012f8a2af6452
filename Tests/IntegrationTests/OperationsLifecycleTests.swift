import Foundation
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// What a statement started on another thread gave back, once it has.
private final class Outcome: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Result<OpsResult, Error>?
    var value: Result<OpsResult, Error>? { lock.lock(); defer { lock.unlock() }; return stored }
    func set(_ v: Result<OpsResult, Error>) { lock.lock(); stored = v; lock.unlock() }
}

/// Runs `sql` on `client` from a second thread; the outcome appears in the returned box.
private func runInBackground(_ client: OpsClient, _ sql: String) -> Outcome {
    let box = Outcome()
    let thread = Thread { box.set(Result { try client.run(sql) }) }
    thread.start()
    return box
}

/// PAUSE / RESUME, SHUTDOWN / SIGTERM with clients inside and outside transactions, JSON logs.
final class OperationsLifecycleTests: ProxyTestCase {
    private func admin(_ proxy: ProxyProcess) throws -> OpsClient {
        try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
    }

    private func count(_ table: String, _ value: String) throws -> String? {
        try onPrimary("SELECT count(*) FROM \(table) WHERE v = '\(value)'").first?.first ?? nil
    }

    // MARK: PAUSE / RESUME

    /// PAUSE holds a new statement (it neither returns nor reaches the primary) until RESUME; a
    /// transaction already open finishes meanwhile.
    func testPauseHoldsNewStatementsUntilResume() throws {
        try makeTable("ops_pause")
        let proxy = try startProxy()
        let writer = try OpsClient(proxy.conninfo(user: "alice"))
        let reader = try OpsClient(proxy.conninfo(user: "bob"))
        XCTAssertEqual(try writer.run("SELECT inet_server_port()").rows, [[replica]])
        XCTAssertEqual(try reader.run("SELECT inet_server_port()").rows, [[replica]])
        let inTransaction = try proxy.connect(user: "carol")
        try inTransaction.exec("BEGIN")
        let mt = marker("ptx")
        XCTAssertEqual(try inTransaction.query("INSERT INTO ops_pause(v) VALUES ('\(mt)') RETURNING inet_server_port()"), [[primary]])

        let console = try admin(proxy)
        XCTAssertEqual(try console.run("PAUSE").tag, "PAUSE")
        XCTAssertEqual(try console.run("SHOW DATABASES").column("paused"), ["on"])

        let m = marker("pause")
        let primaryLog = cluster.logOffset(.primary)
        let replicaLog = cluster.logOffset(.replica)
        let write = runInBackground(writer, "INSERT INTO ops_pause(v) VALUES ('\(m)') RETURNING inet_server_port()")
        let read = runInBackground(reader, "SELECT inet_server_port(), '\(m)' AS tag")

        // The transaction that was open before PAUSE goes on and commits.
        XCTAssertEqual(try inTransaction.query("INSERT INTO ops_pause(v) VALUES ('\(mt)') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try inTransaction.exec("COMMIT"), "COMMIT")
        XCTAssertEqual(try count("ops_pause", mt), "2")

        // A settling period for the held statements to reach the proxy (not a timing assertion: the
        // checks below hold however long it is).
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertNil(write.value, "the write has not returned while paused")
        XCTAssertNil(read.value, "the read has not returned while paused")
        XCTAssertEqual(try count("ops_pause", m), "0", "the write has not run on the primary")
        XCTAssertEqual(try onPrimary("""
            SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%\(m)%' AND pid <> pg_backend_pid()
            """), [["0"]])
        // (the statement logs, without this test's own superuser look-ups)
        func fromProxy(_ server: TestCluster.Server, _ offset: UInt64) -> [String] {
            cluster.loggedStatements(server, containing: m, since: offset).filter { !$0.contains("user=postgres ") }
        }
        XCTAssertEqual(fromProxy(.primary, primaryLog), [], "nothing reached the primary")
        XCTAssertEqual(fromProxy(.replica, replicaLog), [], "nothing reached the replica")

        let resumedAt = Date()
        XCTAssertEqual(try console.run("RESUME").tag, "RESUME")
        waitUntil("the held statements complete after RESUME") { write.value != nil && read.value != nil }
        print("PAUSE/RESUME: held statements completed \(millis(since: resumedAt)) ms after RESUME")
        XCTAssertEqual(try write.value?.get().rows, [[primary]])
        XCTAssertEqual(try read.value?.get().rows, [[replica, m]])
        XCTAssertEqual(try count("ops_pause", m), "1")
        XCTAssertEqual(try console.run("SHOW DATABASES").column("paused"), ["off"])
        XCTAssertEqual(fromProxy(.primary, primaryLog).count, 1, "the write ran once on the primary")
        XCTAssertEqual(fromProxy(.replica, replicaLog).count, 1, "the read ran once on the replica")
    }

    // MARK: SHUTDOWN / SIGTERM

    private func shutdownWithATransactionInProgress(_ trigger: (ProxyProcess, OpsClient) throws -> Void,
                                                    after: (OpsClient) -> Void = { _ in }) throws {
        try makeTable("ops_shutdown")
        let proxy = try startProxy(settings: ["shutdown_timeout = 120s"])
        let m = marker("sd")
        let inTransaction = try OpsClient(proxy.conninfo(user: "alice"))
        try inTransaction.run("BEGIN")
        XCTAssertEqual(try inTransaction.run("INSERT INTO ops_shutdown(v) VALUES ('\(m)') RETURNING inet_server_port()").rows,
                       [[primary]])
        let idle = try OpsClient(proxy.conninfo(user: "bob"))
        XCTAssertEqual(try idle.run("SELECT inet_server_port()").rows, [[replica]])
        let console = try admin(proxy)

        try trigger(proxy, console)

        // Idle clients are told and closed.
        XCTAssertTrue(idle.waitForServerClose(), "the idle client is closed")
        XCTAssertTrue(idle.serverNotices.contains { $0.sqlState == "57P01" }, "idle client: \(idle.serverNotices)")
        // No new clients while shutting down.
        waitUntil("the listener is closed") { !canConnect(port: proxy.port) }
        XCTAssertTrue(proxy.isRunning, "the proxy waits for the open transaction")

        // The transaction goes on and commits; then its client is closed too.
        XCTAssertEqual(try inTransaction.run("INSERT INTO ops_shutdown(v) VALUES ('\(m)') RETURNING inet_server_port()").rows,
                       [[primary]])
        XCTAssertEqual(try inTransaction.run("COMMIT").tag, "COMMIT")
        XCTAssertEqual(try count("ops_shutdown", m), "2", "the committed rows are on the primary")
        XCTAssertTrue(inTransaction.waitForServerClose(), "the client is closed after its COMMIT")
        XCTAssertTrue(inTransaction.serverNotices.contains { $0.sqlState == "57P01" }, "\(inTransaction.serverNotices)")

        waitUntil("the proxy exits", timeout: 60) { !proxy.isRunning }
        XCTAssertEqual(proxy.stop(), 0, "exit status; stderr:\n\(proxy.stderr)")
        XCTAssertTrue(proxy.stderr.contains("pgsplit stopped"), proxy.stderr)
        after(console)
        // Nothing of ours is left open on the primary.
        try waitUntil("the proxy's backend connections are gone") {
            try onPrimary("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%\(m)%' AND pid <> pg_backend_pid()") == [["0"]]
        }
    }

    func testConsoleShutdownLetsATransactionCommit() throws {
        try shutdownWithATransactionInProgress { _, console in
            XCTAssertEqual(try console.run("SHUTDOWN").tag, "SHUTDOWN")
        }
    }

    func testSIGTERMLetsATransactionCommit() throws {
        try shutdownWithATransactionInProgress { proxy, _ in
            XCTAssertEqual(kill(proxy.pid, SIGTERM), 0)
        }
    }

    /// An idle admin console connection is an idle client too: at SIGTERM it gets 57P01 like the
    /// others, and at once (not only when the process exits after the last transaction).
    func testShutdownTellsAnIdleAdminConsole() throws {
        try makeTable("ops_shutdown_console")
        let proxy = try startProxy(settings: ["shutdown_timeout = 120s"])
        let holder = try proxy.connect(user: "alice")
        try holder.exec("BEGIN")
        try holder.exec("INSERT INTO ops_shutdown_console(v) VALUES ('held')")
        let console = try admin(proxy)
        let idle = try OpsClient(proxy.conninfo(user: "bob"))
        XCTAssertEqual(try idle.run("SELECT 1").rows, [["1"]])
        XCTAssertEqual(kill(proxy.pid, SIGTERM), 0)
        XCTAssertTrue(idle.waitForServerClose(), "the idle application client is closed")
        XCTAssertEqual(idle.serverNotices.map(\.sqlState), ["57P01"])
        XCTAssertTrue(console.waitForServerClose(timeout: 10), "the idle console is closed while a transaction still runs")
        XCTAssertTrue(console.serverNotices.contains { $0.sqlState == "57P01" },
                      "the idle admin console got no 57P01: \(console.serverNotices)")
        try holder.exec("COMMIT")
        waitUntil("the proxy exits") { !proxy.isRunning }
        XCTAssertEqual(proxy.stop(), 0)
        XCTAssertTrue(console.waitForServerClose(timeout: 5))
        print("admin console at shutdown: notices \(console.serverNotices.map { "\($0.severity) \($0.sqlState) \($0.message)" })")
    }

    /// With nothing in progress, SHUTDOWN ends the process at once (exit 0) and every client gets 57P01.
    func testShutdownWithOnlyIdleClients() throws {
        let proxy = try startProxy()
        let clients = try (0..<3).map { _ in try OpsClient(proxy.conninfo(user: "carol")) }
        for c in clients { XCTAssertEqual(try c.run("SELECT inet_server_port()").rows, [[replica]]) }
        let console = try admin(proxy)
        let start = Date()
        XCTAssertEqual(try console.run("SHUTDOWN").tag, "SHUTDOWN")
        for c in clients {
            XCTAssertTrue(c.waitForServerClose())
            XCTAssertEqual(c.serverNotices.map(\.sqlState), ["57P01"])
        }
        waitUntil("the proxy exits") { !proxy.isRunning }
        print("SHUTDOWN with 3 idle clients: the process exited \(millis(since: start)) ms after the command")
        XCTAssertEqual(proxy.stop(), 0, proxy.stderr)
    }

    // MARK: log_format = json

    /// Every stderr line is a JSON object with string time, level and message, through start,
    /// logins, routing logs, errors, a refused reload, a vanished client and shutdown.
    func testJSONLogLinesAreJSONObjects() throws {
        try makeTable("ops_json")
        let proxy = try startProxy(settings: ["log_format = json", "log_routing = on"])
        let conn = try proxy.connect(user: "alice")
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), 'quote\" back\\slash\ttab'"),
                       [[replica, "quote\" back\\slash\ttab"]])
        XCTAssertEqual(try conn.query("INSERT INTO ops_json(v) VALUES (E'line\\nbreak') RETURNING inet_server_port()"), [[primary]])
        XCTAssertThrowsError(try conn.exec("SELECT * FROM no_such_table_ops"))
        XCTAssertThrowsError(try PQConnection(proxy.conninfo(user: "nobody_ops", dbname: "nope")))
        let console = try admin(proxy)
        _ = try console.run("SHOW SESSIONS")
        let good = proxy.config
        try good.replacingOccurrences(of: "port=\(cluster.primaryPort)", with: "port=1")
            .write(to: proxy.configURL, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try console.run("RELOAD"))
        try good.write(to: proxy.configURL, atomically: true, encoding: .utf8)
        kill(proxy.pid, SIGHUP)
        waitUntil("the SIGHUP reload is logged") { proxy.stderr.contains("SIGHUP") }
        let vanishing = try proxy.connect(user: "bob")
        try vanishing.exec("BEGIN")
        shutdown(vanishing.socketFD, Int32(SHUT_RDWR))
        vanishing.finish()
        conn.finish()
        console.finish()
        XCTAssertEqual(proxy.stop(), 0)

        let lines = proxy.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        XCTAssertGreaterThan(lines.count, 5, proxy.stderr)
        var levels: Set<String> = []
        for line in lines {
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else {
                XCTFail("not a JSON object: \(line)")
                continue
            }
            for key in ["time", "level", "message"] {
                XCTAssertTrue(object[key] is String, "\(key) in \(line)")
            }
            levels.insert(object["level"] as? String ?? "")
        }
        print("log_format = json: \(lines.count) lines, levels \(levels.sorted())")
        XCTAssertTrue(levels.contains("INFO"), "\(levels)")
        XCTAssertTrue(levels.contains("ERROR"), "the refused reload is an error line: \(levels)")

        // --check logs in the same format.
        let check = proxy.runToExit(["--check"])
        XCTAssertEqual(check.status, 0, check.stderr)
        for line in check.stderr.split(separator: "\n") {
            XCTAssertNotNil((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                            "--check line not JSON: \(line)")
        }
    }
}
