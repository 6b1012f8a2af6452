import XCTest
@testable import SplitCore

/// A read main refuses with an error writeable may not give (a view whose function writes, an
/// unlogged relation behind a view, a table main's user may not read or has not replayed yet) is asked
/// again on writeable, when nothing of main's answer has reached the client.
final class MainRefusalTests: XCTestCase {
    static let rowDescription = Wire.message("T", [0, 1] + Wire.cstr("r") + [0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xff, 0xff, 0xff, 0xff, 0, 0])
    static let row = Wire.message("D", [0, 1, 0, 0, 0, 1, UInt8(ascii: "1")])

    func testAReadMainRefusesRunsOnWriteable() {
        var h = Harness()
        h.client(Wire.query("SELECT * FROM v_wr"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT * FROM v_wr"])
        // The function behind the view wrote: the standby refuses it after describing the row.
        h.backend(.main, Self.rowDescription + Wire.error("25006") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "", "nothing of main's answer reaches the client")
        XCTAssertTrue(h.out.events.contains(.open(.writeable)))
        h.opened(.writeable)
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SELECT * FROM v_wr"])
        h.backend(.writeable, Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "TDCZ")
        // The client's next read goes to main again.
        h.reset()
        h.client(Wire.query("SELECT 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 2"])
    }

    /// A refusal that will come again (a view whose function writes, a table main's user may not read)
    /// is learnt: the same read, with other values, goes to writeable at once. One of a table the
    /// replica has yet to replay is not.
    func testARefusalThatStaysIsLearnt() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT * FROM v_wr WHERE id = 1"))
        h.backend(.main, Wire.error("25006") + Wire.ready())
        h.backend(.writeable, Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT * FROM v_wr WHERE id = 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT * FROM v_wr WHERE id = 1"], "not asked of main again")
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SELECT * FROM v_wr WHERE id = 1", "SELECT * FROM v_wr WHERE id = 2"])
        h.backend(.writeable, Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.finished.map(\.2), [false, false, false], "learnt reads write nothing")
        h.client(Wire.query("SELECT 3"))
        XCTAssertEqual(h.out.sentQueries(to: .main).last, "SELECT 3", "other reads stay on main")

        h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT * FROM just_made WHERE id = 1"))
        h.backend(.main, Wire.error("42P01") + Wire.ready())
        h.backend(.writeable, Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT * FROM just_made WHERE id = 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT * FROM just_made WHERE id = 1", "SELECT * FROM just_made WHERE id = 2"],
                       "the replica will have it: asked of main again")
    }

    /// A prepared statement main refused for good is learnt too: its later executions go to writeable.
    func testAPreparedStatementMainRefusedForGoodIsLearnt() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("S_1", "SELECT * FROM secret WHERE id = $1") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        let run = Wire.bind("S_1") + Wire.execute() + Wire.sync
        h.client(run)
        h.backend(.main, Wire.bindComplete + Wire.error("42501") + Wire.ready())
        h.passShapeCheck(on: .writeable)
        h.backend(.writeable, Wire.bindComplete + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        let toMain = h.out.types(to: .main)
        h.reset()
        h.client(run)
        XCTAssertEqual(h.out.types(to: .main), "", "not asked of main again (main had: \(toMain))")
        XCTAssertEqual(h.out.types(to: .writeable), "BES")
    }

    func testWithWriteableOpenTheRetryGoesAtOnce() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT * FROM new_table"))
        h.backend(.main, Wire.error("42P01") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SELECT * FROM new_table"])
        // Writeable's own answer is the client's, error or not.
        h.backend(.writeable, Wire.error("42P01") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "EZ")
    }

    func testWhatReachedTheClientOrCannotDifferStays() {
        let cases: [(String, [UInt8])] = [
            ("a row was forwarded", Self.rowDescription + Self.row + Wire.error("25006") + Wire.ready()),
            ("an error writeable would give too", Wire.error("22012") + Wire.ready()),
        ]
        for (why, answer) in cases {
            var h = Harness()
            h.opened(.writeable)
            h.client(Wire.query("SELECT * FROM v"))
            h.backend(.main, answer)
            XCTAssertEqual(h.out.sentQueries(to: .writeable), [], why)
            XCTAssertTrue(h.out.clientTypes().hasSuffix("EZ"), why)
        }
        // The RowDescription came in an earlier read: it reached the client, so main's error stands.
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT * FROM v"))
        h.backend(.main, Self.rowDescription)
        h.backend(.main, Wire.error("25006") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [])
        XCTAssertEqual(h.out.clientTypes(), "TEZ")
    }

    /// psycopg's `read_only`, asyncpg's `readonly=True`: BEGIN READ ONLY, then a read main refuses.
    /// The client has seen only the BEGIN, answered by the proxy: main's transaction is rolled back
    /// and the transaction runs on writeable, read-only, from its BEGIN.
    func testTheFirstReadOfAReadOnlyTransactionIsAskedAgainWithItsBegin() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        XCTAssertEqual(h.out.clientTypes(), "CZ", "the BEGIN is answered here and held")
        h.client(Wire.query("SELECT * FROM v"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "SELECT * FROM v"])
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.error("42501") + Wire.ready("E"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "SELECT * FROM v", "ROLLBACK"])
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [], "main's transaction ends first")
        h.backend(.main, Wire.commandComplete("ROLLBACK") + Wire.ready("I"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY", "SELECT * FROM v"])
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T")
                  + Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        XCTAssertEqual(h.out.clientTypes(), "CZTDCZ", "the client sees its BEGIN's answer, then writeable's")
        h.client(Wire.query("SELECT 2"))
        h.client(Wire.query("COMMIT"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY", "SELECT * FROM v", "SELECT 2", "COMMIT"],
                       "the rest of the transaction follows it")
    }

    /// psycopg 3 sends its BEGIN READ ONLY as a simple Query and the read as a batch up to Sync.
    func testTheFirstBatchOfAReadOnlyTransactionIsAskedAgainWithItsBegin() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        let batch = Wire.parse("", "SELECT * FROM secret") + Wire.bind("") + Wire.describe(portal: "") + Wire.execute() + Wire.sync
        h.client(batch)
        XCTAssertEqual(h.out.types(to: .main), "QPBDES")
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T")
                  + Wire.parseComplete + Wire.bindComplete + Self.rowDescription + Wire.error("42501") + Wire.ready("E"))
        h.backend(.main, Wire.commandComplete("ROLLBACK") + Wire.ready("I"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "ROLLBACK"])
        XCTAssertEqual(h.out.types(to: .writeable), "QPBDES")
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY"])
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.parseComplete + Wire.bindComplete
                  + Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        XCTAssertEqual(h.out.clientTypes(), "CZ12TDCZ")
    }

    /// Writeable down: main's refusal stands, the client's transaction has failed, and its ROLLBACK
    /// is answered here (main's was rolled back already).
    func testTheFirstReadOfAReadOnlyTransactionWithWriteableDown() {
        var h = Harness()
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT * FROM nosuch"))
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.error("42P01") + Wire.ready("E"))
        h.backend(.main, Wire.commandComplete("ROLLBACK") + Wire.ready("I"))
        h.session.backendOpenFailed(.writeable, error: Wire.error("08006"))
        h.pump()
        XCTAssertEqual(h.out.clientTypes(), "CZEZ")
        guard case .toClient(let bytes)? = h.out.events.last else { return XCTFail("no answer") }
        XCTAssertEqual(Array(bytes.suffix(6)), Wire.ready("E"), "the client's transaction has failed")
        h.reset()
        h.client(Wire.query("ROLLBACK"))
        XCTAssertEqual(h.out.clientTypes(), "CZ")
        XCTAssertEqual(h.out.sentQueries(to: .main), [], "answered here")
        h.client(Wire.query("SELECT 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 2"])
    }

    func testOnlyALoneAutocommitReadIsAskedAgain() {
        // Past its first statement, a read-only transaction on main is main's: its error stands.
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT 1"))
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("SELECT * FROM v"))
        h.backend(.main, Wire.error("25006") + Wire.ready("E"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [])
        // Two queries in flight: asking the first again would answer it after the second.
        h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT * FROM v") + Wire.query("SELECT 2"))
        h.backend(.main, Wire.error("25006") + Wire.ready() + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [])
        XCTAssertEqual(h.out.clientTypes(), "EZCZ")
    }

    /// The client's next query, sent while the refused read waits for writeable, runs after it.
    func testTheClientsNextQueryWaitsForTheRetry() {
        var h = Harness()
        h.client(Wire.query("SELECT * FROM v_wr"))
        h.backend(.main, Wire.error("25006") + Wire.ready())
        h.client(Wire.query("SELECT 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT * FROM v_wr"], "held until the retry is answered")
        h.opened(.writeable)
        h.backend(.writeable, Self.rowDescription + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SELECT * FROM v_wr"])
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT * FROM v_wr", "SELECT 2"])
    }

    /// pgJDBC and psycopg 3 send a read as one batch (Parse, Bind, Describe, Execute, Sync): the batch
    /// runs again on writeable as it came, and the client sees only writeable's replies.
    func testABatchMainRefusesRunsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        let batch = Wire.parse("", "SELECT * FROM v_wr") + Wire.bind("") + Wire.describe(portal: "") + Wire.execute() + Wire.sync
        h.client(batch)
        XCTAssertEqual(h.out.types(to: .main), "PBDES")
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Self.rowDescription + Wire.error("25006") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "")
        XCTAssertEqual(h.out.types(to: .writeable), "PBDES")
        XCTAssertEqual(h.out.parsedTexts(to: .writeable), ["SELECT * FROM v_wr"])
        h.backend(.writeable, Wire.parseComplete + Wire.bindComplete + Self.rowDescription + Self.row
                  + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "12TDCZ")
    }

    /// A named statement bound in a batch of its own: prepared on writeable, then bound there.
    func testABoundStatementMainRefusesIsPreparedAndRunOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("S_1", "SELECT * FROM v_wr") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.reset()
        h.client(Wire.bind("S_1") + Wire.execute() + Wire.sync)
        h.backend(.main, Wire.bindComplete + Wire.error("25006") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "")
        // The copy is compared with the client's first (Session+ResultShapes.swift), then used.
        h.passShapeCheck(on: .writeable)
        XCTAssertEqual(h.out.statementNames(to: .writeable), ["C S_1", "P S_1", "D S_1"])
        XCTAssertTrue(h.out.types(to: .writeable).hasSuffix("BES"))
        h.backend(.writeable, Wire.bindComplete + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "2DCZ")
    }

    /// A Parse both servers refuse leaves no statement behind: the one main refused is undone before
    /// the batch is asked again, the one writeable refused after.
    func testAParseRefusedByBothLeavesNoStatement() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("broken", "SELECT * FROM no_such_table") + Wire.sync)
        h.backend(.main, Wire.error("42P01") + Wire.ready())
        XCTAssertEqual(h.out.statementNames(to: .writeable), ["P broken"])
        h.backend(.writeable, Wire.error("42P01") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        h.client(Wire.bind("broken") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.parsedTexts(to: .writeable), [], "nothing to prepare: PostgreSQL's 26000 there")
    }

    /// asyncpg prepares with Parse, Describe and Flush, then sends Bind, Execute and Sync once it has
    /// the description: that rest is asked again on its own, the client keeping main's description.
    func testTheRestOfABatchLeftOpenAtAFlushRunsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT * FROM v_wr") + Wire.describe(statement: "s1") + Wire.flush)
        h.backend(.main, Wire.parseComplete + ResultShapeTests.parameters([]) + Self.rowDescription)
        XCTAssertEqual(h.out.clientTypes(), "1tT")
        h.client(Wire.bind("s1") + Wire.execute() + Wire.sync)
        h.backend(.main, Wire.bindComplete + Wire.error("25006") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "1tT", "main's refusal is not the client's")
        h.passShapeCheck(on: .writeable)
        XCTAssertEqual(h.out.statementNames(to: .writeable), ["C s1", "P s1", "D s1"])
        XCTAssertTrue(h.out.types(to: .writeable).hasSuffix("BES"))
        h.backend(.writeable, Wire.bindComplete + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "1tT2DCZ")
    }

    /// The first part's description still on its way when the rest fails: it belongs to the client,
    /// so main's error stands.
    func testTheRestOfAnOpenBatchStaysWhenTheFirstPartIsStillAnswering() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT * FROM v_wr") + Wire.describe(statement: "s1") + Wire.flush)
        h.client(Wire.bind("s1") + Wire.execute() + Wire.sync)
        h.backend(.main, Wire.parseComplete + ResultShapeTests.parameters([]) + Self.rowDescription + Wire.bindComplete
                  + Wire.error("25006") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "1tT2EZ")
        XCTAssertEqual(h.out.types(to: .writeable), "")
    }

    /// asyncpg's prepare of a table the replica does not have yet: main refuses the Parse of a batch
    /// left open at a Flush. The proxy ends that batch on main with its own Sync and opens it again on
    /// writeable, where the client's Bind, Execute and Sync then go.
    func testTheFirstPartOfABatchLeftOpenRunsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT x FROM fresh") + Wire.describe(statement: "s1") + Wire.flush)
        h.backend(.main, Wire.error("42P01"))
        XCTAssertEqual(h.out.types(to: .main), "PDHS", "the proxy's own Sync")
        h.backend(.main, Wire.ready("I"))
        XCTAssertEqual(h.out.clientTypes(), "")
        XCTAssertEqual(h.out.types(to: .writeable), "PDH")
        h.backend(.writeable, Wire.parseComplete + ResultShapeTests.parameters([]) + Self.rowDescription)
        XCTAssertEqual(h.out.clientTypes(), "1tT")
        h.client(Wire.bind("s1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "PDHBES")
        h.backend(.writeable, Wire.bindComplete + Self.row + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "1tT2DCZ")
        XCTAssertEqual(h.out.types(to: .main), "PDHS")
    }

    /// The client went on before main refused the first part: what it sent went to main too, so the
    /// refusal stands.
    func testAnOpenBatchTheClientContinuedIsNotAskedAgain() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT x FROM fresh") + Wire.describe(statement: "s1") + Wire.flush)
        h.client(Wire.bind("s1") + Wire.execute() + Wire.flush)
        h.backend(.main, Wire.error("42P01"))
        XCTAssertEqual(h.out.clientTypes(), "E")
        XCTAssertEqual(h.out.types(to: .writeable), "")
    }

    /// Writeable cannot be opened: main's own refusal is the client's answer, and the session goes on.
    func testWithWriteableDownMainsRefusalStands() {
        var h = Harness()
        h.client(Wire.query("SELECT * FROM nosuch"))
        h.backend(.main, Wire.error("42P01") + Wire.ready())
        h.session.backendOpenFailed(.writeable, error: Wire.error("08006"))
        h.pump()
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        guard case .toClient(let bytes)? = h.out.events.last else { return XCTFail("no answer") }
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("C42P01"), "main's own error")
        h.reset()
        h.client(Wire.query("SELECT 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 2"])
    }
}
