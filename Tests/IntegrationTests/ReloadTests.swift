import Foundation
import XCTest

/// SIGHUP re-reads proxy.conf: a writeable backend added, removed or broken takes effect (or is
/// refused) without a restart, and an open transaction finishes where it started.
final class ReloadTests: ProxyTestCase {
    private func rewrite(_ proxy: ProxyProcess, _ transform: (String) -> String) throws {
        try transform(proxy.config).write(to: proxy.configURL, atomically: true, encoding: .utf8)
        kill(proxy.pid, SIGHUP)
    }

    private func writeableLine() -> String {
        "writeable = host=127.0.0.1 port=\(cluster.primaryPort) user=app_rw password=app_rw"
    }

    func testWriteableAddedAndRemovedLive() throws {
        try makeTable("rl_items")
        let proxy = try startProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            """)
        let conn = try proxy.connect()
        XCTAssertThrowsError(try conn.exec("INSERT INTO rl_items(v) VALUES ('before')")) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "25006", "\(e)")
        }
        // Add the writeable backend: the same idle session moves over.
        try rewrite(proxy) { $0 + "\n" + writeableLine() + "\n" }
        waitUntil("writes reach the primary after reload") {
            (try? conn.query("INSERT INTO rl_items(v) VALUES ('added') RETURNING inet_server_port()")) == [[primary]]
        }
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]], "reads stay on main")
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rl_items WHERE v = 'added'"), [["1"]])

        // A transaction in progress finishes on its backend even if the writeable is removed meanwhile.
        try conn.exec("BEGIN")
        XCTAssertEqual(try conn.query("INSERT INTO rl_items(v) VALUES ('in-tx') RETURNING inet_server_port()"), [[primary]])
        let logBefore = proxy.stderr.components(separatedBy: "configuration reloaded").count
        try rewrite(proxy) { $0.replacingOccurrences(of: writeableLine(), with: "") }
        waitUntil("the reload is applied") { proxy.stderr.components(separatedBy: "configuration reloaded").count > logBefore }
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[primary]], "the transaction stays where it began")
        try conn.exec("COMMIT")
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rl_items WHERE v = 'in-tx'"), [["1"]])
        // Now idle: writes go to main again, and main's permissions answer.
        XCTAssertThrowsError(try conn.exec("INSERT INTO rl_items(v) VALUES ('after')")) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "25006", "\(e)")
        }
    }

    func testBrokenReloadKeepsTheRunningConfiguration() throws {
        try makeTable("rl_kept")
        let proxy = try startProxy()
        // A writeable backend nobody listens on: refused, logged, and the running one stays.
        try rewrite(proxy) { $0.replacingOccurrences(of: "port=\(self.cluster.primaryPort)", with: "port=1") }
        waitUntil("the refusal is logged") { proxy.stderr.contains("reload refused") }
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("INSERT INTO rl_kept(v) VALUES ('x') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
    }
}
