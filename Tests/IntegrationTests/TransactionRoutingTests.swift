import Foundation
import XCTest

/// Where whole transactions run, proven by the servers themselves.
final class TransactionRoutingTests: ProxyTestCase {
    /// psycopg2 and others open a read-only transaction as BEGIN followed by SET TRANSACTION READ ONLY.
    func testBeginThenSetTransactionReadOnlyRunsOnMain() throws {
        let proxy = try startProxy()
        let conn = try proxy.connect()
        try conn.exec("BEGIN")
        try conn.exec("SET TRANSACTION READ ONLY")
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), pg_is_in_recovery(), current_setting('transaction_read_only')"),
                       [[replica, "t", "on"]])
        try conn.exec("COMMIT")
    }

    /// A read-write transaction that starts with a read still runs entirely on writeable: one snapshot.
    func testReadWriteTransactionStartingWithAReadStaysOnWriteable() throws {
        try makeTable("tr_items")
        let proxy = try startProxy()
        let conn = try proxy.connect()
        try conn.exec("BEGIN")
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), txid_current_if_assigned() IS NULL"), [[primary, "t"]])
        XCTAssertEqual(try conn.query("INSERT INTO tr_items(v) VALUES ('x') RETURNING inet_server_port()"), [[primary]])
        try conn.exec("ROLLBACK")
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM tr_items"), [["0"]])
    }

    /// An empty transaction needs no backend, and the session is idle afterwards.
    func testEmptyTransactionAndTransactionStatus() throws {
        let proxy = try startProxy()
        let conn = try proxy.connect()
        try conn.exec("BEGIN")
        XCTAssertEqual(conn.transactionStatus, "T")
        try conn.exec("COMMIT")
        XCTAssertEqual(conn.transactionStatus, "I")
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
    }
}
