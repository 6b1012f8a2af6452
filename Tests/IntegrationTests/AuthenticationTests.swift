import Foundation
import XCTest

/// Client authentication at the proxy, and backends that log in as the client's own user.
final class AuthenticationTests: ProxyTestCase {
    private func assertPasswordFailure(_ proxy: ProxyProcess, user: String, password: String,
                                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try proxy.connect(user: user, password: password), file: file, line: line) { e in
            let err = e as? PQError
            XCTAssertEqual(err?.sqlState, "28P01", "\(e)", file: file, line: line)
            XCTAssertTrue(err?.message.contains("password authentication failed for user") ?? false, "\(e)",
                          file: file, line: line)
        }
    }

    private func checkAuth(_ authType: String, users: [(String, String)] = ProxyProcess.defaultUsers,
                           user: String, password: String) throws {
        let proxy = try startProxy(auth: authType, users: users)
        let conn = try proxy.connect(user: user, password: password)
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
        conn.finish()
        assertPasswordFailure(proxy, user: user, password: "wrong-\(password)")
        assertPasswordFailure(proxy, user: "nobody_\(UInt16.random(in: 0...9999))", password: password)
        // Still serving after the failures.
        let again = try proxy.connect(user: user, password: password)
        XCTAssertEqual(try again.query("SELECT 1"), [["1"]])
    }

    /// A replication connection (pg_basebackup, pg_recvlogical, a subscription) is refused at login
    /// with a reason, not let in to fail on IDENTIFY_SYSTEM; replication=false is an ordinary session.
    func testReplicationConnectionsAreRefusedAtLogin() throws {
        let proxy = try startProxy()
        for mode in ["database", "true"] {
            XCTAssertThrowsError(try PQConnection(proxy.conninfo(extra: "replication=\(mode)")), mode) { e in
                XCTAssertEqual((e as? PQError)?.sqlState, "0A000", "\(e)")
                XCTAssertTrue("\(e)".contains("replication connections"), "\(e)")
            }
        }
        let conn = try PQConnection(proxy.conninfo(extra: "replication=false"))
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
    }

    func testScramSHA256() throws {
        try checkAuth("scram-sha-256", user: "alice", password: "alice-secret")
    }

    func testMD5() throws {
        try checkAuth("md5", user: "bob", password: "bob-secret")
    }

    /// The salt in SCRAM's server-first-message for `user`, from a raw login started by hand.
    private func scramSalt(_ proxy: ProxyProcess, user: String) -> String? {
        let client = try? RawClient(port: proxy.port)
        client?.send(RawWire.startup([("user", user), ("database", "app")]))
        guard client?.readMessages(until: "R").last?.typeChar == "R" else { return nil }
        let clientFirst = Array("n,,n=,r=abcdefghijklmnopqrstuvwx".utf8)
        client?.send(RawWire.message("p", RawWire.cstring("SCRAM-SHA-256") + RawWire.int32(Int32(clientFirst.count)) + clientFirst))
        guard let continueBody = client?.readMessages(until: "R").last?.body, continueBody.count > 4 else { return nil }
        let serverFirst = String(decoding: continueBody.dropFirst(4), as: UTF8.self)
        return serverFirst.split(separator: ",").first { $0.hasPrefix("s=") }.map { String($0.dropFirst(2)) }
    }

    func testScramWithAPlainPasswordDerivesItsSecretOnceAndAgainAfterAReload() throws {
        let proxy = try startProxy(auth: "scram-sha-256")
        // A plain auth_file password is turned into a SCRAM secret at the first login and kept, as
        // PostgreSQL keeps the one made when a password is set: the same salt at every login.
        let first = scramSalt(proxy, user: "alice")
        XCTAssertNotNil(first)
        XCTAssertEqual(scramSalt(proxy, user: "alice"), first)
        XCTAssertEqual(try proxy.connect(user: "alice", password: "alice-secret").query("SELECT 1"), [["1"]])

        // A changed password in auth_file, reloaded: the new one works, the old one no longer does.
        let usersURL = proxy.dir.appendingPathComponent("users.txt")
        let users = try String(contentsOf: usersURL, encoding: .utf8)
        try users.replacingOccurrences(of: "\"alice-secret\"", with: "\"alice-renewed\"")
            .write(to: usersURL, atomically: true, encoding: .utf8)
        let reloadsBefore = proxy.stderr.components(separatedBy: "configuration reloaded").count
        kill(proxy.pid, SIGHUP)
        waitUntil("the reload is applied") { proxy.stderr.components(separatedBy: "configuration reloaded").count > reloadsBefore }
        XCTAssertEqual(try proxy.connect(user: "alice", password: "alice-renewed").query("SELECT 1"), [["1"]])
        assertPasswordFailure(proxy, user: "alice", password: "alice-secret")
    }

    func testScramWithStoredVerifierAndMD5WithStoredHash() throws {
        // auth_file lines copied from pg_authid: alice's SCRAM verifier, bob's md5 hash.
        let stored = try onPrimary("SELECT rolname, rolpassword FROM pg_authid WHERE rolname IN ('alice', 'bob') ORDER BY 1")
        let users = stored.map { ($0[0] ?? "", $0[1] ?? "") }
        XCTAssertTrue(users.first?.1.hasPrefix("SCRAM-SHA-256$") ?? false)
        XCTAssertTrue(users.last?.1.hasPrefix("md5") ?? false)
        try checkAuth("scram-sha-256", users: users, user: "alice", password: "alice-secret")
        try checkAuth("md5", users: users, user: "bob", password: "bob-secret")
    }

    func testBackendsLogInAsTheClientsOwnUser() throws {
        try makeTable("au_items")
        let proxy = try startProxy(auth: "scram-sha-256", databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app
            writeable = port=\(cluster.primaryPort)
            """)
        let alice = try proxy.connect(user: "alice", password: "alice-secret")
        XCTAssertEqual(try alice.query("SELECT current_user, inet_server_port()"), [["alice", replica]])
        XCTAssertEqual(try alice.query("INSERT INTO au_items(v) VALUES ('by alice') RETURNING current_user, inet_server_port()"),
                       [["alice", primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM au_items WHERE v = 'by alice'"), [["1"]])
        let bob = try proxy.connect(user: "bob", password: "bob-secret")
        XCTAssertEqual(try bob.query("SELECT current_user, inet_server_port()"), [["bob", replica]])
    }
}
