import XCTest
@testable import SplitCore
import Foundation

/// Statement names are compared as words, and long ones as digests: every name must still find its own
/// statement, and the messages the proxy writes must carry the client's exact name.
final class StatementNameTests: XCTestCase {
    /// Names that differ only late, only in length, or only past the first 24 bytes.
    static let awkwardNames: [String] = {
        // "é" twice: precomposed and combining, equal as Strings, different names to PostgreSQL.
        var names = ["S_1", "S_10", "S_1_x", "\u{e9}", "e\u{301}"]
        let base24 = String(repeating: "a", count: 24)
        names += [base24, base24 + "a", base24 + "b", String(base24.dropLast()), String(base24.dropLast()) + "b"]
        // pgx names a statement by a digest of its text: 58 bytes, here all alike but for the last 4.
        for i in 0..<40 {
            names.append("stmtcache_" + String(repeating: "0", count: 44) + String(format: "%04x", i))
        }
        names.append("stmtcache_" + String(repeating: "0", count: 43))
        // Longer than the 63 bytes PostgreSQL reads of a name, differing before and after them.
        names.append(String(repeating: "x", count: 62) + "a" + "tail")
        names.append(String(repeating: "x", count: 62) + "b" + "tail")
        return names
    }()

    /// The bytes of a name PostgreSQL reads: names that agree in them are the same statement.
    static func significant(_ name: String) -> String { String(decoding: name.utf8.prefix(63), as: UTF8.self) }

    func testEveryNameFindsItsOwnValue() {
        var table = StatementNames<Int>()
        for (i, name) in Self.awkwardNames.enumerated() { table[StatementName(name)] = i }
        table[.unnamed] = -1
        XCTAssertEqual(table.count, Self.awkwardNames.count + 1)
        for (i, name) in Self.awkwardNames.enumerated() {
            XCTAssertEqual(table[StatementName(name)], i, name)
        }
        XCTAssertEqual(table[.unnamed], -1)
        XCTAssertNil(table[StatementName("S_2")])
        XCTAssertNil(table[StatementName("stmtcache_" + String(repeating: "0", count: 44) + "ffff")])
        // Removing some (from the scanned part and from the overflow) leaves the others in place.
        for (i, name) in Self.awkwardNames.enumerated() where i % 3 == 0 { table[StatementName(name)] = nil }
        for (i, name) in Self.awkwardNames.enumerated() {
            XCTAssertEqual(table[StatementName(name)], i % 3 == 0 ? nil : i, name)
        }
        // Changed in place, and stored again after removal.
        for (i, name) in Self.awkwardNames.enumerated() {
            table.update(StatementName(name)) { $0 = ($0 ?? 0) + 1000 + i }
        }
        for (i, name) in Self.awkwardNames.enumerated() {
            XCTAssertEqual(table[StatementName(name)], (i % 3 == 0 ? 0 : i) + 1000 + i, name)
        }
        table.removeAll()
        XCTAssertEqual(table.count, 0)
        XCTAssertNil(table[StatementName(Self.awkwardNames[0])])
    }

    func testNamesAreEqualExactlyWhenTheirBytesAre() {
        for a in Self.awkwardNames {
            for b in Self.awkwardNames {
                XCTAssertEqual(StatementName(a) == StatementName(b), a.utf8.elementsEqual(b.utf8), "\(a) / \(b)")
            }
        }
        // Past 63 bytes a name is the same statement as any other that starts alike, as in PostgreSQL.
        let x63 = String(repeating: "x", count: 62) + "a"
        XCTAssertEqual(StatementName(x63 + "tail"), StatementName(x63 + "other tail"))
        XCTAssertEqual(StatementName(x63 + "tail"), StatementName(x63))
        XCTAssertNotEqual(StatementName(x63), StatementName(String(x63.dropLast())))
        let short = StatementName("S_12")
        XCTAssertEqual(short.description, "S_12")
        XCTAssertFalse(short.isLong)
        XCTAssertTrue(StatementName(Self.awkwardNames.last!).isLong)
    }

    /// pgx-style names, more of them than are scanned without hashing: each is prepared on writeable
    /// under its own exact name when a read-write transaction first binds it, and a name closed by the
    /// client and parsed again is closed on the backend that still has it, by its exact name.
    func testLongNamesReachTheOtherBackendExactly() {
        var h = Harness()
        h.opened(.writeable)
        let names = Self.awkwardNames
        for (i, name) in names.enumerated() {
            h.client(Wire.parse(name, "SELECT \(i)") + Wire.sync)
            h.backend(.main, Wire.parseComplete + Wire.ready())
        }
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        for (i, name) in names.enumerated() {
            h.reset()
            h.client(Wire.bind(name) + Wire.execute() + Wire.sync)
            let sent = Self.significant(name)
            XCTAssertEqual(h.out.statementNames(to: .main), ["D " + sent], name)
            h.passShapeCheck(on: .writeable, status: "T")
            // The client's Parse (P) went as it came; the proxy's Close and Describe name the bytes that count.
            XCTAssertEqual(h.out.statementNames(to: .writeable), ["C " + sent, "P " + name, "D " + sent], name)
            XCTAssertEqual(h.out.parsedTexts(to: .writeable), ["SELECT \(i)"], name)
            h.backend(.writeable, Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        }
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        // Closed on main (where the client is now), so writeable's copy is stale: parsing the name
        // again on writeable closes that copy first, by its exact name.
        let long = names[names.count - 3]
        h.client(Wire.close(statement: long) + Wire.sync)
        h.backend(.main, Wire.closeComplete + Wire.ready())
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        h.client(Wire.parse(long, "SELECT 'again'") + Wire.bind(long) + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.statementNames(to: .writeable), ["C " + long, "P " + long])
    }

    /// A client that keeps preparing and closing statements under new long names does not make the
    /// session keep every name it ever saw, and the names still held keep their bytes.
    func testLongNamesOfClosedStatementsAreForgotten() {
        var h = Harness()
        h.opened(.writeable)
        let kept = "stmtcache_" + String(repeating: "f", count: 48)
        h.client(Wire.parse(kept, "SELECT 'kept'") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        for i in 0..<1000 {
            let name = "stmtcache_" + String(repeating: "0", count: 44) + String(format: "%04x", i)
            h.client(Wire.parse(name, "SELECT \(i)") + Wire.bind(name) + Wire.execute() + Wire.close(statement: name) + Wire.sync)
            h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1")
                      + Wire.closeComplete + Wire.ready())
        }
        XCTAssertLessThanOrEqual(h.session.longNames.count, 128)
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        h.client(Wire.bind(kept) + Wire.execute() + Wire.sync)
        h.passShapeCheck(on: .writeable, status: "T")
        XCTAssertEqual(h.out.statementNames(to: .writeable), ["C " + kept, "P " + kept, "D " + kept])
    }
}

/// A Parse or Close the server refused or skipped changes nothing: PostgreSQL keeps the statement it
/// had, so the copy the proxy prepares on the other backend must be that one.
final class RefusedStatementChangeTests: XCTestCase {
    /// Prepared on main, then a read-write transaction binds it: what writeable is given to prepare.
    private func textPreparedOnWriteable(_ h: inout Harness, _ name: String) -> [String] {
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        h.client(Wire.bind(name) + Wire.execute() + Wire.sync)
        if h.out.types(to: .main).isEmpty { return h.out.parsedTexts(to: .writeable) }
        h.passShapeCheck(on: .writeable, status: "T")
        return h.out.parsedTexts(to: .writeable)
    }

    func testAParseOfAnExistingNameKeepsTheFirstStatement() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT 'first'") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.client(Wire.parse("s1", "SELECT 'second'") + Wire.sync)
        h.backend(.main, Wire.error("42P05") + Wire.ready())
        XCTAssertEqual(textPreparedOnWriteable(&h, "s1"), ["SELECT 'first'"])
    }

    func testAParseTheServerRefusesLeavesNoStatement() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT * FROM no_such_table") + Wire.bind("s1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBES")
        h.backend(.main, Wire.error("42P01") + Wire.ready())
        // Nothing to prepare: the Bind reaches writeable as it came and gets PostgreSQL's 26000 there.
        XCTAssertEqual(textPreparedOnWriteable(&h, "s1"), [])
        XCTAssertEqual(h.out.types(to: .writeable), "BES")
    }

    /// In one batch: what the server answered before the error stands, what came after did not happen.
    func testOnlyTheAnsweredPartOfAFailedBatchCounts() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("old", "SELECT 'old'") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.client(Wire.parse("s2", "SELECT 'two'") + Wire.parse("", "SELECT 'unnamed'") + Wire.close(statement: "old")
                 + Wire.parse("s3", "SELECT * FROM no_such_table") + Wire.close(statement: "s2") + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PSPPCPCS")
        h.backend(.main, Wire.parseComplete + Wire.parseComplete + Wire.closeComplete + Wire.error("42P01") + Wire.ready())
        XCTAssertEqual(textPreparedOnWriteable(&h, "s2"), ["SELECT 'two'"], "s2's Close came after the error")
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        XCTAssertEqual(textPreparedOnWriteable(&h, "s3"), [], "s3 was never made")
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        XCTAssertEqual(textPreparedOnWriteable(&h, "old"), [], "old was closed before the error")
    }

    /// A batch left open at a Flush and continued: its later Parse refused, its later Close done.
    func testTheContinuationOfAnOpenBatchCountsToo() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("gone", "SELECT 'gone'") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.client(Wire.parse("s1", "SELECT 'first'") + Wire.flush)
        XCTAssertEqual(h.out.types(to: .main), "PSPH")
        h.backend(.main, Wire.parseComplete)
        h.client(Wire.close(statement: "gone") + Wire.parse("s1", "SELECT 'second'") + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PSPHCPS")
        h.backend(.main, Wire.closeComplete + Wire.error("42P05") + Wire.ready())
        XCTAssertEqual(textPreparedOnWriteable(&h, "s1"), ["SELECT 'first'"])
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        XCTAssertEqual(textPreparedOnWriteable(&h, "gone"), [], "closed in the continuation")
    }
}

/// SQL's DEALLOCATE removes a protocol-level statement of that name too (one namespace in PostgreSQL).
final class SQLDeallocateTests: XCTestCase {
    func testDeallocateOfAProtocolStatementForgetsIt() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("__asyncpg_stmt_1__", "SELECT 1") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.client(Wire.query("DEALLOCATE __asyncpg_stmt_1__"))
        XCTAssertEqual(h.out.sentQueries(to: .main).last, "DEALLOCATE __asyncpg_stmt_1__")
        h.backend(.main, Wire.commandComplete("DEALLOCATE") + Wire.ready())
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        // Not prepared on writeable from the proxy's memory: the Bind gets PostgreSQL's 26000 there.
        h.client(Wire.bind("__asyncpg_stmt_1__") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.parsedTexts(to: .writeable), [])
        XCTAssertEqual(h.out.types(to: .main), "", "no comparison with a copy the client no longer has")
    }
}
