import Foundation
import XCTest

/// No writeable backend configured: reads and writes both go to main (here the replica), so a write
/// gets the replica's own answer.
final class NoWriteableTests: ProxyTestCase {
    func testEverythingGoesToMain() throws {
        try makeTable("nw_items")
        let proxy = try startProxy(databases: """
            [database app]
            main = host=127.0.0.1 port=\(cluster.replicaPort) dbname=app user=app_ro password=app_ro
            """)
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[replica, "t"]])
        XCTAssertThrowsError(try conn.exec("INSERT INTO nw_items(v) VALUES ('x')")) { e in
            XCTAssertEqual((e as? PQError)?.sqlState, "25006", "\(e)")
        }
        // A read-write transaction also runs on main.
        try conn.exec("BEGIN")
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
        try conn.exec("COMMIT")
        XCTAssertEqual(try conn.queryParams("SELECT inet_server_port()"), [[replica]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM nw_items"), [["0"]])
    }
}
