import PostgresWire
import XCTest
@testable import SplitCore

/// A statement the client described on one backend, then prepared by the proxy on the other after its
/// table changed: the client must get PostgreSQL's 0A000, never rows of another shape.
final class ResultShapeTests: XCTestCase {
    static func rowDescription(_ columns: [(String, Int32)]) -> [UInt8] {
        var body: [UInt8] = [UInt8(columns.count >> 8), UInt8(columns.count & 0xff)]
        for (name, type) in columns {
            body += Wire.cstr(name) + [0, 0, 0, 0] + [0, 0]
            body += withUnsafeBytes(of: type.bigEndian, Array.init) + [0, 4] + [0xff, 0xff, 0xff, 0xff] + [0, 0]
        }
        return Wire.message("T", body)
    }
    static let parameterDescription = Wire.message("t", [0, 0])
    static let int4Column = rowDescription([("n", 23)])
    static let int8Column = rowDescription([("n", 20)])

    /// Prepares S_1 on main, then (main behind the session's writes) binds it: the statement is
    /// described on main, then the proxy's copy on writeable, and the client's batch waits for both.
    func prepareOnMainThenBindOnWriteable(_ h: inout Harness, describe: Bool = true) {
        h.opened(.writeable)
        h.client(Wire.parse("S_1", "SELECT n FROM t") + (describe ? Wire.describe(statement: "S_1") : []) + Wire.sync)
        h.backend(.main, Wire.parseComplete + (describe ? Self.parameterDescription + Self.int4Column : []) + Wire.ready())
        h.session.readsToWriteable = true
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "DS", "the client's copy is described first")
        XCTAssertEqual(h.out.types(to: .writeable), "")
        h.backend(.main, Self.parameterDescription + Self.int4Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDS", "then the proxy's own Close, Parse, Describe and Sync only")
        XCTAssertEqual(h.out.clientTypes(), "")
    }

    static let missing = Wire.message("E", Wire.cstr("SERROR") + Wire.cstr("C26000")
                                      + Wire.cstr("Mprepared statement \"S_1\" does not exist") + [0])

    func assertChangedResultError(_ h: Harness, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(h.out.clientTypes(), "EZ", file: file, line: line)
        guard case .toClient(let bytes)? = h.out.events.last else { return XCTFail("no answer", file: file, line: line) }
        let error = try ErrorFields.decode(ArraySlice(bytes[5..<(bytes.count - 6)]))
        XCTAssertEqual(error.code, "0A000", file: file, line: line)
        XCTAssertEqual(error.message, "cached plan must not change result type", file: file, line: line)
        XCTAssertEqual(error.value(of: UInt8(ascii: "R")), "RevalidateCachedQuery", "what pgJDBC and asyncpg look for",
                       file: file, line: line)
    }

    func testACopyThatDescribesOtherColumnsIsRefusedWithPostgreSQLsError() throws {
        var h = Harness()
        prepareOnMainThenBindOnWriteable(&h)
        // The column became int8 on writeable (an ALTER main has not replayed).
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameterDescription + Self.int8Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSCBES", "the differing copy is closed; the client's batch follows")
        XCTAssertEqual(h.out.clientTypes(), "", "nothing of the check reaches the client")
        h.backend(.writeable, Wire.closeComplete + Self.missing + Wire.ready())
        try assertChangedResultError(h)

        // Bound again, it is compared again and fails again while the columns differ (as PostgreSQL's
        // statement keeps failing)...
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "DS")
        h.backend(.main, Self.parameterDescription + Self.int4Column + Wire.ready())
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameterDescription + Self.int8Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSCBES")
        h.backend(.writeable, Wire.closeComplete + Self.missing + Wire.ready())
        try assertChangedResultError(h)
        // ...until the client prepares it again, as the drivers do after this error.
        h.reset()
        h.client(Wire.close(statement: "S_1") + Wire.parse("S_1", "SELECT n FROM t") + Wire.describe(statement: "S_1")
                 + Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "CPDBES")
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameterDescription + Self.int8Column
                  + Wire.bindComplete + Wire.commandComplete("SELECT 0") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "31tT2CZ")
    }

    /// The change was undone (an ALTER rolled back): compared again, the copy matches and is used, as
    /// PostgreSQL's own statement runs again once its table is back. A table recreated with the same
    /// columns (another OID) matches too.
    func testARefusedCopyIsUsedOnceTheColumnsMatchAgain() {
        var h = Harness()
        prepareOnMainThenBindOnWriteable(&h)
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameterDescription + Self.int8Column + Wire.ready())
        h.backend(.writeable, Wire.closeComplete + Self.missing + Wire.ready())
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        h.backend(.main, Self.parameterDescription + Self.int4Column + Wire.ready())
        var recreated = Self.int4Column
        recreated[recreated.count - 17] ^= 0x5a  // another table OID, same name and type
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameterDescription + recreated + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSBES")
        h.backend(.writeable, Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "2CZ")
    }

    /// Main itself says the statement's columns changed (it replayed the ALTER): the client must
    /// prepare again, so the copy on writeable is not even made.
    func testTheClientsCopyReportingAChangeRefusesAtOnce() throws {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("S_1", "SELECT n FROM t") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.session.readsToWriteable = true
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "DS")
        h.backend(.main, Wire.error("0A000") + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "BES")
        h.backend(.writeable, Self.missing + Wire.ready())
        try assertChangedResultError(h)
    }

    func testACopyThatDescribesTheSameColumnsIsUsed() {
        var h = Harness()
        prepareOnMainThenBindOnWriteable(&h)
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameterDescription + Self.int4Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSBES", "checked once, then the client's batch alone")
        h.backend(.writeable, Wire.bindComplete + Wire.commandComplete("SELECT 0") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "2CZ")
        // The copy stays checked: later batches go straight through.
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "BES")
    }

    func testACheckThatFailsLeavesTheBatchToTheBackend() {
        var h = Harness()
        prepareOnMainThenBindOnWriteable(&h)
        h.backend(.writeable, Wire.closeComplete + Wire.error("25P02") + Wire.ready("E"))
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSCPBES", "prepared as usual, answered by the backend")
        XCTAssertEqual(h.out.clientTypes(), "")
    }

    /// The new backend is opened for the batch and the session's settings are replayed there first:
    /// the comparison waits for them (the copy must be prepared under the same search_path), and the
    /// client's copy is described only once nothing else is in flight.
    func testTheCheckWaitsForTheSettingsReplayedOnANewBackend() {
        var h = Harness()
        h.client(Wire.query("SET search_path = a"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.parse("S_1", "SELECT n FROM t") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.session.readsToWriteable = true
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.events, [.open(.writeable)])
        h.opened(.writeable)
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SET search_path = a"])
        XCTAssertEqual(h.out.types(to: .main), "", "nothing sent to main while writeable's replay is in flight")
        h.backend(.writeable, Wire.commandComplete("SET") + Wire.ready())
        XCTAssertEqual(h.out.types(to: .main), "DS")
        h.passShapeCheck(on: .writeable)
        XCTAssertEqual(h.out.types(to: .writeable), "QCPDSBES")
    }

    /// A statement that exists on no other backend (its backend connection was replaced) has nothing
    /// to compare with: it is prepared as before.
    func testAStatementOnlyTheNewBackendWillHoldIsNotChecked() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("S_2", "SELECT 1") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.session.backendClosed(.main, &h.out)
        h.session.readsToWriteable = true
        h.reset()
        h.client(Wire.bind("S_2") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "CPBES")
    }

    static func parameters(_ types: [Int32]) -> [UInt8] {
        var body: [UInt8] = [UInt8(types.count >> 8), UInt8(types.count & 0xff)]
        for type in types { body += withUnsafeBytes(of: type.bigEndian, Array.init) }
        return Wire.message("t", body)
    }

    /// The parameter types the copy is given: the Parse the proxy sends ends with them.
    static func parameterTypesOfParse(_ bytes: [UInt8]) -> [Int32]? {
        guard bytes.first == UInt8(ascii: "P"), let nameEnd = bytes[5...].firstIndex(of: 0),
              let sqlEnd = bytes[(nameEnd + 1)...].firstIndex(of: 0) else { return nil }
        let count = Int(bytes[sqlEnd + 1]) << 8 | Int(bytes[sqlEnd + 2])
        return (0..<count).map { i in
            let at = sqlEnd + 3 + 4 * i
            return Int32(bitPattern: UInt32(bytes[at]) << 24 | UInt32(bytes[at + 1]) << 16 | UInt32(bytes[at + 2]) << 8 | UInt32(bytes[at + 3]))
        }
    }

    /// A statement prepared without parameter types (asyncpg's way) gets from the server the types
    /// its table had then, and the client encodes its values for them. The copy on the other backend
    /// is prepared with those types, not with what the changed table would give a new statement; a
    /// copy that still describes other parameter types is refused like one with other columns.
    /// S_1 prepared on main without parameter types, then bound with main behind: the client's copy
    /// is described on main (float8 for $1), and the proxy's copy is prepared on writeable.
    func prepareUntypedOnMainThenBindOnWriteable(_ h: inout Harness) {
        h.opened(.writeable)
        h.client(Wire.parse("S_1", "SELECT count(*) FROM t WHERE k = $1") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.session.readsToWriteable = true
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "DS")
        h.backend(.main, Self.parameters([701]) + Self.int8Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDS")
    }

    func testTheCopyTakesTheParameterTypesOfTheClientsStatement() throws {
        var h = Harness()
        prepareUntypedOnMainThenBindOnWriteable(&h)
        guard case .toBackend(.writeable, let sent)? = h.out.events.last else { return XCTFail("nothing sent to writeable") }
        let parse = Array(sent[(sent.firstIndex(of: UInt8(ascii: "P"))!)...])
        XCTAssertEqual(Self.parameterTypesOfParse(parse), [701], "float8, as the client's copy has it")
        // Described with the same types: the client's batch goes on.
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameters([701]) + Self.int8Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSBES")
    }

    func testACopyWithOtherParameterTypesIsRefused() throws {
        var h = Harness()
        prepareUntypedOnMainThenBindOnWriteable(&h)
        h.backend(.writeable, Wire.closeComplete + Wire.parseComplete + Self.parameters([20]) + Self.int8Column + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSCBES", "the differing copy is closed; the Bind gets 26000 there")
    }
}
