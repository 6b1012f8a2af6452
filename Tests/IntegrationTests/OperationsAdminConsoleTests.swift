import Foundation
import XCTest

/// The admin console (database `pgsplit`, users in admin_users) and the Prometheus endpoint, checked
/// against what the backends themselves say.
final class OperationsAdminConsoleTests: ProxyTestCase {
    private func admin(_ proxy: ProxyProcess, password: String? = nil) throws -> OpsClient {
        try OpsClient(proxy.conninfo(user: "admin", password: password, dbname: "pgsplit"))
    }

    /// Each SHOW answers with a result set that libpq reads (names, rows, tag) and psql prints.
    func testEveryShowIsAResultSetLibpqAndPsqlRead() throws {
        let proxy = try startProxy()
        // Some traffic first, so SESSIONS / STATS / BACKENDS have rows.
        let client = try proxy.connect(user: "alice")
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]])
        let console = try admin(proxy)
        let expected: [(String, String)] = [("HELP", "command"), ("DATABASES", "name"), ("BACKENDS", "database"),
                                            ("SESSIONS", "user"), ("STATS", "statements"), ("CONFIG", "key")]
        for (topic, column) in expected {
            let result = try console.run("SHOW \(topic)")
            XCTAssertEqual(result.tag, "SHOW", topic)
            XCTAssertTrue(result.columns.contains(column), "SHOW \(topic) columns: \(result.columns)")
            XCTAssertFalse(result.rows.isEmpty, "SHOW \(topic) has rows")
            for row in result.rows { XCTAssertEqual(row.count, result.columns.count, "SHOW \(topic) row width") }

            let psql = runProcess(toolPath("psql"), ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                                     "-d", proxy.conninfo(user: "admin", dbname: "pgsplit"),
                                                     "-c", "SHOW \(topic)"])
            XCTAssertEqual(psql.status, 0, "psql SHOW \(topic): \(psql.stderr)")
            XCTAssertEqual(psql.stdout.split(separator: "\n").count, result.rows.count,
                           "psql prints SHOW \(topic) row for row: \(psql.stdout)")
        }
        // Names a client sees match what is configured.
        let databases = try console.run("SHOW DATABASES")
        XCTAssertEqual(databases.column("name"), ["app"])
        XCTAssertEqual(databases.column("main"), ["127.0.0.1:\(replica)/app"])
        XCTAssertEqual(databases.column("writeable"), ["127.0.0.1:\(primary)/app"])
        let backends = try console.run("SHOW BACKENDS")
        XCTAssertEqual(Set(backends.column("role").compactMap { $0 }), ["main", "writeable"], "\(backends.rows)")
        // The monitor's view agrees with the servers: main is in recovery, writeable is not.
        try waitUntil("both backends checked") {
            let b = try console.run("SHOW BACKENDS").records
            return b.contains { $0["role"] == "main" && $0["in_recovery"] == "on" && $0["state"] == "up" }
                && b.contains { $0["role"] == "writeable" && $0["in_recovery"] == "off" && $0["state"] == "up" }
        }
        // Several commands in one query string: libpq returns the last result.
        XCTAssertEqual(try console.run("SHOW HELP; SHOW DATABASES").column("name"), ["app"])
        XCTAssertEqual(try console.run(";").tag, "", "an empty command is an empty query")
    }

    /// SHOW BACKENDS' connections follow the servers: a session's backend the server closes (here
    /// terminated while idle, which the session survives) is no longer counted.
    func testBackendConnectionsCountServerCloses() throws {
        let proxy = try startProxy()
        let console = try admin(proxy)
        func mainConnections() throws -> String? {
            try console.run("SHOW BACKENDS").records.first { $0["role"] == "main" }?["connections"] ?? nil
        }
        XCTAssertEqual(try mainConnections(), "0")
        let client = try PQConnection(proxy.conninfo(user: "alice", extra: "application_name=gauge_probe"))
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]])
        XCTAssertEqual(try mainConnections(), "1")
        let su = try cluster.superuser(.replica)
        defer { su.finish() }
        XCTAssertEqual(try su.scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'gauge_probe'"), "1")
        try waitUntil("the closed backend no longer counted") { try mainConnections() == "0" }
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]], "the session survives an idle backend's end")
        XCTAssertEqual(try mainConnections(), "1")
        client.finish()
    }

    /// N reads and M writes through the proxy: SHOW STATS counts at least that many per target, and
    /// the Prometheus text's pgsplit_units_total says the same.
    func testStatsAndMetricsCountReadsAndWrites() throws {
        try makeTable("ops_stats")
        let metricsPort = try freePort()
        let proxy = try startProxy(settings: ["metrics_listen = 127.0.0.1:\(metricsPort)"])
        let client = try proxy.connect(user: "bob")
        let reads = 7, writes = 4
        let m = marker("st")
        for _ in 0..<reads {
            XCTAssertEqual(try client.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[replica, "t"]])
        }
        for i in 0..<writes {
            XCTAssertEqual(try client.query("INSERT INTO ops_stats(v) VALUES ('\(m)-\(i)') RETURNING inet_server_port()"),
                           [[primary]])
        }
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM ops_stats WHERE v LIKE '\(m)-%'"), [["\(writes)"]])
        client.finish()

        let console = try admin(proxy)
        let stats = try console.run("SHOW STATS")
        func row(_ target: String) -> [String: String?]? {
            stats.records.first { $0["database"] == "app" && $0["target"] == target }
        }
        let mainRow = try XCTUnwrap(row("main"), "\(stats.rows)")
        let writeRow = try XCTUnwrap(row("writeable"), "\(stats.rows)")
        let mainStatements = Int((mainRow["statements"] ?? nil) ?? "") ?? -1
        let writeStatements = Int((writeRow["statements"] ?? nil) ?? "") ?? -1
        XCTAssertGreaterThanOrEqual(mainStatements, reads, "\(mainRow)")
        XCTAssertGreaterThanOrEqual(Int((mainRow["reads"] ?? nil) ?? "") ?? -1, reads, "\(mainRow)")
        XCTAssertGreaterThanOrEqual(writeStatements, writes, "\(writeRow)")
        XCTAssertGreaterThanOrEqual(Int((writeRow["writes"] ?? nil) ?? "") ?? -1, writes, "\(writeRow)")
        print("SHOW STATS after \(reads) reads and \(writes) writes: main \(mainRow), writeable \(writeRow)")

        let (status, body) = try httpGet(port: metricsPort)
        XCTAssertTrue(status.contains("200"), status)
        let samples = try parsePrometheus(body)
        XCTAssertTrue(samples.allSatisfy { $0.name.hasPrefix("pgsplit_") }, "every series is pgsplit_*")
        func units(_ target: String) -> Int {
            Int(samples.filter { $0.name == "pgsplit_units_total" && $0.labels["database"] == "app" && $0.labels["target"] == target }
                .reduce(0) { $0 + $1.value })
        }
        XCTAssertEqual(units("main"), mainStatements, "pgsplit_units_total{target=main} agrees with SHOW STATS")
        XCTAssertEqual(units("writeable"), writeStatements, "pgsplit_units_total{target=writeable} agrees with SHOW STATS")
        XCTAssertTrue(body.contains("# TYPE pgsplit_units_total counter"), body)
        XCTAssertTrue(samples.contains { $0.name == "pgsplit_backend_up" && $0.labels["target"] == "main" },
                      "backend gauges present")
        print("pgsplit_units_total: main \(units("main")), writeable \(units("writeable"))")
        let notFound = try httpGet(port: metricsPort, path: "/nothing")
        XCTAssertFalse(notFound.status.contains("200"), "an unknown path is not 200: \(notFound.status)")
    }

    /// A client holding a transaction shows as `idle in transaction` with its user; the primary agrees.
    func testSessionsListsAClientIdleInTransaction() throws {
        try makeTable("ops_sessions")
        let proxy = try startProxy()
        let client = try proxy.connect(user: "carol")
        let m = marker("ses")
        try client.exec("BEGIN")
        XCTAssertEqual(try client.query("INSERT INTO ops_sessions(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(client.transactionStatus, "T")

        // The primary holds an open transaction whose last statement is ours.
        let onPrimaryState = try onPrimary("""
            SELECT state FROM pg_stat_activity WHERE query LIKE '%\(m)%' AND pid <> pg_backend_pid()
            """)
        XCTAssertEqual(onPrimaryState, [["idle in transaction"]])

        let console = try admin(proxy)
        let sessions = try console.run("SHOW SESSIONS")
        let carol = sessions.records.filter { $0["user"] == "carol" }
        XCTAssertEqual(carol.count, 1, "\(sessions.records)")
        XCTAssertEqual(carol.first?["state"], "idle in transaction", "\(carol)")
        XCTAssertEqual(carol.first?["transaction_backend"], "writeable", "\(carol)")
        XCTAssertEqual(carol.first?["database"], "app", "\(carol)")
        XCTAssertFalse(sessions.records.contains { $0["user"] == "admin" }, "the console itself is not a session row")

        try client.exec("COMMIT")
        let after = try console.run("SHOW SESSIONS").records.filter { $0["user"] == "carol" }
        XCTAssertEqual(after.first?["state"], "idle", "\(after)")
        XCTAssertEqual(after.first?["transaction_backend"] ?? nil, nil, "\(after)")
        client.finish()
        try waitUntil("the closed client leaves SHOW SESSIONS") {
            try !console.run("SHOW SESSIONS").records.contains { $0["user"] == "carol" }
        }
    }

    /// SHOW CONFIG shows the backends but never a password.
    func testConfigMasksPasswords() throws {
        let proxy = try startProxy()
        let console = try admin(proxy)
        let config = try console.run("SHOW CONFIG")
        let text = config.rows.map { $0.map { $0 ?? "" }.joined(separator: "=") }.joined(separator: "\n")
        let main = config.records.first { $0["key"] == "database.app.main" }?["value"] ?? nil
        let writeable = config.records.first { $0["key"] == "database.app.writeable" }?["value"] ?? nil
        XCTAssertNotNil(main, text)
        XCTAssertTrue(main?.contains("port=\(replica)") ?? false, main ?? "")
        XCTAssertTrue(writeable?.contains("port=\(primary)") ?? false, writeable ?? "")
        XCTAssertFalse(text.contains("password=app_ro"), text)
        XCTAssertFalse(text.contains("password=app_rw"), text)
        for (_, secret) in ProxyProcess.defaultUsers where secret.contains("secret") {
            XCTAssertFalse(text.contains(secret), "auth_file secrets stay hidden")
        }
        XCTAssertTrue(main?.contains("password=") ?? false, "the key is shown, its value masked: \(main ?? "")")
    }

    func testUnknownCommandIsASyntaxError() throws {
        let proxy = try startProxy()
        let console = try admin(proxy)
        XCTAssertThrowsError(try console.run("SHOW NONSENSE")) { XCTAssertEqual(($0 as? PQError)?.sqlState, "42601", "\($0)") }
        XCTAssertThrowsError(try console.run("SELECT 1")) { XCTAssertEqual(($0 as? PQError)?.sqlState, "42601", "\($0)") }
        // The connection is still usable after the error.
        XCTAssertEqual(try console.run("SHOW DATABASES").column("name"), ["app"])
    }

    func testNonAdminUserCannotLogInToTheConsole() throws {
        let proxy = try startProxy()
        XCTAssertThrowsError(try PQConnection(proxy.conninfo(user: "alice", dbname: "pgsplit"))) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "28000", "\(e)")
        }
        // The same user reaches the application database.
        XCTAssertEqual(try proxy.connect(user: "alice").query("SELECT inet_server_port()"), [[replica]])
    }

    func testWrongAdminPasswordIsRefused() throws {
        let proxy = try startProxy(auth: "scram-sha-256")
        XCTAssertThrowsError(try PQConnection(proxy.conninfo(user: "admin", password: "wrong", dbname: "pgsplit"))) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "28P01", "\(e)")
        }
        let console = try admin(proxy, password: "admin-secret")
        XCTAssertEqual(try console.run("SHOW DATABASES").column("name"), ["app"])
        // A non-admin with the right password is still refused.
        XCTAssertThrowsError(try PQConnection(proxy.conninfo(user: "alice", password: "alice-secret", dbname: "pgsplit"))) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "28000", "\(e)")
        }
    }

    /// RELOAD on the console adds a writeable backend: writes reach the primary afterwards.
    func testConsoleReloadAddsAWriteableBackend() throws {
        try makeTable("ops_reload")
        let proxy = try startProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            """)
        let conn = try proxy.connect()
        XCTAssertThrowsError(try conn.exec("INSERT INTO ops_reload(v) VALUES ('before')")) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "25006", "the replica refuses the write: \(e)")
        }
        let writeable = "writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw"
        try (proxy.config + "\n" + writeable + "\n").write(to: proxy.configURL, atomically: true, encoding: .utf8)
        let console = try admin(proxy)
        XCTAssertEqual(try console.run("RELOAD").tag, "RELOAD")
        XCTAssertEqual(try console.run("SHOW DATABASES").column("writeable"), ["127.0.0.1:\(primary)/app"])
        // RELOAD answered after the new configuration is in force: the idle session moves at once.
        XCTAssertEqual(try conn.query("INSERT INTO ops_reload(v) VALUES ('added') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM ops_reload WHERE v = 'added'"), [["1"]])
    }

    /// A configuration that fails its checks, or does not parse, is refused with an error; the old
    /// configuration stays in force.
    func testConsoleReloadRefusesABrokenConfiguration() throws {
        try makeTable("ops_reload_kept")
        let proxy = try startProxy()
        let console = try admin(proxy)
        let good = proxy.config

        // A writeable backend nobody listens on.
        try good.replacingOccurrences(of: "port=\(cluster.primaryPort)", with: "port=1")
            .write(to: proxy.configURL, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try console.run("RELOAD")) { e in
            let error = e as? PQError
            XCTAssertNotNil(error?.sqlState, "\(e)")
            XCTAssertTrue(error?.message.contains("reload refused") ?? false, "\(e)")
        }
        // A misspelt key.
        try good.replacingOccurrences(of: "[pgsplit]\n", with: "[pgsplit]\nlisten_adress = 1\n").write(to: proxy.configURL, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try console.run("RELOAD")) { e in
            XCTAssertTrue((e as? PQError)?.message.contains("reload refused") ?? false, "\(e)")
        }
        XCTAssertEqual(try console.run("SHOW DATABASES").column("writeable"), ["127.0.0.1:\(primary)/app"])
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("INSERT INTO ops_reload_kept(v) VALUES ('x') RETURNING inet_server_port()"), [[primary]])
        // (read-your-writes: this session reads main again once main has replayed its write)
        waitUntil("reads on main") { (try? conn.query("SELECT inet_server_port()")) == [[replica]] }
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM ops_reload_kept WHERE v = 'x'"), [["1"]])
        XCTAssertTrue(proxy.stderr.contains("reload refused"), proxy.stderr)
    }
}
