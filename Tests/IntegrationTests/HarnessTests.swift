import Foundation
import XCTest

/// The test harness itself, against the pair directly (no proxy): the pair is a primary and a
/// streaming replica, the roles exist as described, the libpq wrapper and the fake server work.
final class HarnessTests: XCTestCase {
    func testPairIsPrimaryAndStreamingReplica() throws {
        let c = try TestCluster.shared()
        let p = try c.superuser(.primary)
        let r = try c.superuser(.replica)
        XCTAssertEqual(try p.query("SELECT pg_is_in_recovery(), inet_server_port()").first,
                       ["f", nil]) // unix socket: no server port
        XCTAssertEqual(try r.scalar("SELECT pg_is_in_recovery()"), "t")
        XCTAssertEqual(try p.scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"), "1")
    }

    func testLibpqWrapperOverTCP() throws {
        let c = try TestCluster.shared()
        let rw = try c.appRW()
        XCTAssertEqual(try rw.query("SELECT inet_server_port(), pg_is_in_recovery(), current_user").first,
                       ["\(c.primaryPort)", "f", "app_rw"])
        // last result of a multi-statement string
        XCTAssertEqual(try rw.query("SELECT 1; SELECT 2, NULL"), [["2", nil]])
        // extended protocol
        XCTAssertEqual(try rw.queryParams("SELECT $1::int + $2::int, $3::text", ["40", "2", nil]), [["42", nil]])
        try rw.prepare(name: "h_add", sql: "SELECT $1::int * 2")
        XCTAssertEqual(try rw.execPrepared(name: "h_add", params: ["21"]), [["42"]])
        XCTAssertEqual(try rw.exec("SELECT 1"), "SELECT 1")
        XCTAssertGreaterThan(rw.socketFD, 0)

        // errors carry SQLSTATE and message
        XCTAssertThrowsError(try rw.query("SELECT * FROM no_such_table_xyz")) { e in
            let err = e as? PQError
            XCTAssertEqual(err?.sqlState, "42P01")
            XCTAssertTrue(err?.message.contains("no_such_table_xyz") ?? false)
        }
        rw.finish()
        XCTAssertThrowsError(try rw.query("SELECT 1"))
    }

    func testReplicaRefusesWritesWith25006() throws {
        let c = try TestCluster.shared()
        let rw = try c.appRW()
        try rw.exec("CREATE TABLE IF NOT EXISTS h_ro_check(id int)")
        try c.waitForReplica()
        let ro = try PQConnection(c.tcpConninfo(.replica, user: "app_ro", password: "app_ro"))
        XCTAssertEqual(try ro.scalar("SELECT count(*) FROM h_ro_check"), "0")
        XCTAssertThrowsError(try ro.exec("INSERT INTO h_ro_check VALUES (1)")) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "25006")
        }
    }

    func testUsersAndPasswordStorage() throws {
        let c = try TestCluster.shared()
        for (user, pw) in [("alice", "alice-secret"), ("bob", "bob-secret"), ("carol", "carol-secret"),
                           ("admin", "admin-secret"), ("app_ro", "app_ro")] {
            let conn = try PQConnection(c.tcpConninfo(.replica, user: user, password: pw))
            XCTAssertEqual(try conn.scalar("SELECT current_user"), user)
        }
        let su = try c.superuser(.primary)
        let stored = try su.query("SELECT rolname, left(rolpassword, 3) FROM pg_authid WHERE rolname IN ('alice', 'bob') ORDER BY 1")
        XCTAssertEqual(stored, [["alice", "SCR"], ["bob", "md5"]])
    }

    func testConnectionErrorsCarrySQLState() throws {
        let c = try TestCluster.shared()
        XCTAssertThrowsError(try PQConnection(c.tcpConninfo(.primary, user: "alice", password: "wrong"))) { e in
            let err = e as? PQError
            XCTAssertEqual(err?.sqlState, "28P01", "\(e)")
            XCTAssertTrue(err?.message.contains("password authentication failed for user") ?? false, "\(e)")
        }
        XCTAssertThrowsError(try PQConnection(c.tcpConninfo(.primary, user: "nobody_here", password: "x"))) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "28P01", "\(e)")
        }
    }

    func testStatementLogRecordsStatements() throws {
        let c = try TestCluster.shared()
        let before = c.logOffset(.primary)
        let marker = "harness_marker_\(UInt32.random(in: 0...UInt32.max))"
        let rw = try c.appRW()
        try rw.exec("SELECT '\(marker)'")
        rw.finish()
        var lines: [String] = []
        waitUntil("statement in primary log") {
            lines = c.loggedStatements(.primary, containing: marker, since: before)
            return !lines.isEmpty
        }
        XCTAssertTrue(lines.first?.contains("port=\(c.primaryPort)") ?? false, "\(lines)")
        XCTAssertTrue(lines.first?.contains("user=app_rw") ?? false, "\(lines)")
    }

    func testFakeServerSpeaksLikeCockroach() throws {
        let fake = try FakePostgresServer()
        defer { fake.stop() }
        let conn = try PQConnection("host=127.0.0.1 port=\(fake.port) user=x dbname=y sslmode=disable")
        XCTAssertEqual(conn.parameter("crdb_version"), FakePostgresServer.crdbVersion)
        XCTAssertEqual(conn.parameter("server_version"), "13.0.0")
        XCTAssertEqual(try conn.scalar("SELECT version()"), FakePostgresServer.versionRow)
    }

    func testProxyProcessFindsABinaryAndFreePorts() throws {
        let port = try freePort()
        XCTAssertLessThan(port, 32768)
        XCTAssertTrue(canBind(port: port))
        // The binary sits beside the test bundle (or PGSPLIT_BIN); it only has to exist here.
        let path = ProxyProcess.binaryPath
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: path), "no pgsplit at \(path)")
    }
}
