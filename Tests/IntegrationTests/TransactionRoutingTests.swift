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

    /// A session through pgsplit can write, so the settings clients read to tell a primary from a
    /// standby come from writeable: libpq's target_session_attrs=read-write connects, and
    /// `SHOW transaction_read_only` (what pgJDBC's targetServerType=primary and pgx ask) says off —
    /// the replica would say on. Inside a read-only transaction main answers, and says on.
    func testTheReadOnlySettingsSayTheSessionCanWrite() throws {
        let proxy = try startProxy()
        let conn = try PQConnection(proxy.conninfo(extra: "target_session_attrs=read-write"))
        XCTAssertEqual(try conn.query("SHOW transaction_read_only"), [["off"]])
        XCTAssertEqual(try conn.query("SHOW in_hot_standby"), [["off"]])
        XCTAssertEqual(try conn.query("SHOW default_transaction_read_only"), [["off"]])
        // Asking wrote nothing: the next read is not held on the primary until main replays.
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
        try conn.exec("BEGIN READ ONLY")
        XCTAssertEqual(try conn.query("SHOW transaction_read_only"), [["on"]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[replica, "t"]])
        try conn.exec("COMMIT")
        // A session made read-only says so, from whichever backend answers.
        try conn.exec("SET default_transaction_read_only = on")
        XCTAssertEqual(try conn.query("SHOW transaction_read_only"), [["on"]])
    }

    /// Session defaults given at login (libpq's options / PGOPTIONS) route as a SET would: serializable
    /// keeps even read-only transactions on the primary (a standby refuses serializable mode);
    /// read-only sends plain transactions to the replica and is reported as such — and one
    /// transaction may still ask for READ WRITE.
    func testLoginOptionsDecideWhereTransactionsRun() throws {
        let proxy = try startProxy()
        let serializable = try PQConnection(proxy.conninfo(extra: "options='-c default_transaction_isolation=serializable'"))
        try serializable.exec("BEGIN READ ONLY")
        XCTAssertEqual(try serializable.query("SELECT inet_server_port(), current_setting('transaction_isolation')"),
                       [[primary, "serializable"]])
        try serializable.exec("COMMIT")

        let readOnly = try PQConnection(proxy.conninfo(extra: "options='-c default_transaction_read_only=on'"))
        XCTAssertEqual(readOnly.parameter("default_transaction_read_only"), "on")
        try readOnly.exec("BEGIN")
        XCTAssertEqual(try readOnly.query("SELECT inet_server_port(), current_setting('transaction_read_only')"),
                       [[replica, "on"]])
        try readOnly.exec("COMMIT")
        try readOnly.exec("BEGIN")
        try readOnly.exec("SET TRANSACTION READ WRITE")
        XCTAssertEqual(try readOnly.query("SELECT inet_server_port(), current_setting('transaction_read_only')"),
                       [[primary, "off"]])
        try readOnly.exec("ROLLBACK")

        let plain = try proxy.connect()
        XCTAssertEqual(plain.parameter("default_transaction_read_only"), "off")
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
