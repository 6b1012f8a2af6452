import SplitCore
import StatementClassifier
import XCTest

/// Session defaults a client sets at login decide where its transactions run, as a SET would.
final class TransactionDefaultsTests: XCTestCase {
    func testStartupOptionsAreRead() {
        XCTAssertEqual(TransactionDefaults(startupParameters: [("options", "-c default_transaction_isolation=serializable")]),
                       TransactionDefaults(serializable: true))
        XCTAssertEqual(TransactionDefaults(startupParameters: [("options", "-cdefault_transaction_read_only=on -c search_path=a\\ b")]),
                       TransactionDefaults(readOnly: true))
        XCTAssertEqual(TransactionDefaults(startupParameters: [("options", "--default-transaction-read-only=true")]),
                       TransactionDefaults(readOnly: true))
        XCTAssertEqual(TransactionDefaults(startupParameters: [("default_transaction_isolation", "SERIALIZABLE"),
                                                               ("application_name", "x")]),
                       TransactionDefaults(serializable: true))
        // Not a setting of ours, an escaped space inside a value, and a dangling -c.
        XCTAssertEqual(TransactionDefaults(startupParameters: [("options", "-c search_path=x\\ default_transaction_read_only=on -c")]),
                       TransactionDefaults())
        XCTAssertEqual(TransactionDefaults(startupParameters: [("options", "-c default_transaction_read_only=off")]),
                       TransactionDefaults())
    }

    /// Serializable by default from login: a read-only transaction still needs the primary (a standby
    /// refuses serializable mode), and so do autocommit reads, as with a SET.
    func testSerializableAtLoginKeepsTransactionsOnWriteable() {
        var h = Harness(defaults: TransactionDefaults(serializable: true))
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY"])
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        // RESET returns to the login value, not to the server's built-in default.
        h.client(Wire.query("SET default_transaction_isolation = 'read committed'"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).suffix(2), ["BEGIN READ ONLY", "SELECT 1"])
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.main, Wire.commandComplete("COMMIT") + Wire.ready())
        h.client(Wire.query("RESET default_transaction_isolation"))
        h.backend(.main, Wire.commandComplete("RESET") + Wire.ready())
        h.client(Wire.query("BEGIN READ ONLY"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "BEGIN READ ONLY")
    }

    /// Read-only from login: a plain BEGIN runs on main.
    func testReadOnlyAtLoginSendsPlainTransactionsToMain() {
        var h = Harness(defaults: TransactionDefaults(readOnly: true))
        h.opened(.writeable)
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN", "SELECT 1"])
        XCTAssertEqual(h.out.types(to: .writeable), "")
    }
}
