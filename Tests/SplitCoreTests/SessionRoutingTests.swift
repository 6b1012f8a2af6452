import SplitCore
import StatementClassifier
import XCTest

final class SessionRoutingTests: XCTestCase {
    func testReadGoesToMainAndAnswerReachesClient() {
        var h = Harness()
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.types(to: .main), "Q")
        XCTAssertEqual(h.out.types(to: .writeable), "")
        h.backend(.main, Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "CZ")
    }

    func testWriteOpensWriteableThenRunsThere() {
        var h = Harness()
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        XCTAssertEqual(h.out.events.first, .open(.writeable))
        XCTAssertEqual(h.out.types(to: .writeable), "", "nothing is sent before the backend is open")
        h.opened(.writeable)
        XCTAssertEqual(h.out.types(to: .writeable), "Q")
        XCTAssertEqual(h.out.types(to: .main), "")
    }

    /// `SHOW transaction_read_only` is answered by writeable (the session can write), and writes
    /// nothing: the shell is not told to hold the session's reads until main replays. A write is.
    func testShowOfTheReadOnlySettingsAsksWriteableAndWritesNothing() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SHOW transaction_read_only"))
        h.backend(.writeable, Wire.commandComplete("SHOW") + Wire.ready())
        h.client(Wire.query("show IN_HOT_STANDBY"))
        h.backend(.writeable, Wire.commandComplete("SHOW") + Wire.ready())
        h.client(Wire.query("SHOW search_path"))
        h.backend(.main, Wire.commandComplete("SHOW") + Wire.ready())
        h.client(Wire.query("SHOW transaction_read_only; SELECT 1"))
        h.backend(.writeable, Wire.commandComplete("SHOW") + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.backend(.writeable, Wire.commandComplete("INSERT 0 1") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SHOW transaction_read_only", "show IN_HOT_STANDBY",
                                                           "SHOW transaction_read_only; SELECT 1", "INSERT INTO t VALUES (1)"])
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SHOW search_path"])
        XCTAssertEqual(h.out.finished.map(\.2), [false, false, false, false, true],
                       "only the INSERT counts as a write: a SHOW of writeable and a plain read write nothing")
    }

    /// Reads sent to writeable while main has not replayed the session's write (or is down) write
    /// nothing: were they counted as writes, a session reading without a pause would wait for main
    /// again after every read, and never read there again.
    func testPlainReadsOnWriteableWriteNothing() {
        var h = Harness()
        h.opened(.writeable)
        h.session.readsToWriteable = true
        h.client(Wire.query("SELECT abalance FROM pgbench_accounts WHERE aid = 1"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT nextval('s')"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("/* pgsplit: writeable */ SELECT f()"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .main), [])
        XCTAssertEqual(h.out.finished.map(\.2), [false, true, true],
                       "a plain read writes nothing; nextval and what the client sent to writeable itself may")
    }

    /// A transaction's writes count when it ends; one that only read (on writeable, as a read-only
    /// transaction must while main lags) leaves nothing for main to replay.
    func testATransactionCountsAsAWriteWhenItEndsAndOnlyIfItWrote() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("INSERT 0 1") + Wire.ready("T"))
        h.client(Wire.query("SELECT 1"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready("I"))
        XCTAssertEqual(h.out.finished.map(\.2), [false, false, true], "the write counts at its COMMIT")
        h.reset()
        h.session.readsToWriteable = true
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT 1"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready("I"))
        XCTAssertEqual(h.out.finished.map(\.2).suffix(2), [false, false], "a transaction of reads wrote nothing")
    }

    /// A notification sent by this session's own backend carries the process ID the client was given
    /// (clients compare the two to skip their own); another session's keeps its sender's.
    func testOwnNotificationsCarryTheClientsProcessID() {
        var h = Harness()
        h.opened(.writeable)
        h.session.clientProcessID = 42
        h.session.setBackendProcessID(0x0102_0304, for: .writeable)
        func notification(_ pid: [UInt8]) -> [UInt8] { Wire.message("A", pid + Wire.cstr("ch") + Wire.cstr("p")) }
        h.client(Wire.query("NOTIFY ch, 'p'"))
        h.backend(.writeable, Wire.commandComplete("NOTIFY") + notification([1, 2, 3, 4]) + Wire.ready()
                  + notification([9, 9, 9, 9]))
        XCTAssertEqual(h.out.events.compactMap { if case .toClient(let b) = $0 { return b } else { return nil } }.reduce([], +),
                       Wire.commandComplete("NOTIFY") + notification([0, 0, 0, 42]) + Wire.ready() + notification([9, 9, 9, 9]))
    }

    func testNoWriteableSendsWritesToMain() {
        var h = Harness(hasWriteable: false)
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        XCTAssertEqual(h.out.types(to: .main), "Q")
        XCTAssertFalse(h.out.events.contains(.open(.writeable)))
    }

    func testReadWriteTransactionStaysOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.client(Wire.query("SELECT 1"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready("I"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ WRITE", "SELECT 1", "COMMIT"])
        XCTAssertEqual(h.out.types(to: .main), "")
        // After the transaction, reads go back to main.
        h.client(Wire.query("SELECT 2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 2"])
    }

    func testReadOnlyTransactionStaysOnMain() {
        var h = Harness()
        h.client(Wire.query("BEGIN READ ONLY"))
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.client(Wire.query("SELECT 1"))
        h.backend(.main, Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "SELECT 1", "COMMIT"])
        XCTAssertFalse(h.out.events.contains(.open(.writeable)))
    }

    func testSessionDefaultReadOnlyMakesPlainBeginReadOnly() {
        var h = Harness()
        h.client(Wire.query("SET default_transaction_read_only = on"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).suffix(2), ["BEGIN", "SELECT 1"])
        XCTAssertFalse(h.out.events.contains(.open(.writeable)))
    }

    func testSerializableSessionDefaultKeepsReadsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SET default_transaction_isolation = 'serializable'"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "SELECT 1")
    }

    func testPipelinedUnitsOnTwoBackendsAnswerInOrder() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT 1") + Wire.query("INSERT INTO t VALUES (1)") + Wire.query("SELECT 2"))
        // The write waits until main has answered the read before it.
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1"])
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [])
        h.backend(.main, Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["INSERT INTO t VALUES (1)"])
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1"])
        h.backend(.writeable, Wire.commandComplete("INSERT 0 1") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1", "SELECT 2"])
        XCTAssertEqual(h.out.clientTypes(), "CZCZ")
    }

    func testPipelinedReadsOnOneBackendAreNotHeldBack() {
        var h = Harness()
        h.client(Wire.query("SELECT 1") + Wire.query("SELECT 2") + Wire.query("SELECT 3"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1", "SELECT 2", "SELECT 3"])
    }

    func testMultiStatementWithAWriteGoesToWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT 1; DELETE FROM t"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SELECT 1; DELETE FROM t"])
    }

    func testExtendedBatchWithAWriteIsOneUnitOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        let batch = Wire.parse("", "SELECT 1") + Wire.bind("") + Wire.execute()
            + Wire.parse("", "UPDATE t SET a = 1") + Wire.bind("") + Wire.execute() + Wire.sync
        h.client(batch)
        XCTAssertEqual(h.out.types(to: .writeable), "PBEPBES")
        XCTAssertEqual(h.out.types(to: .main), "")
    }

    func testExtendedBatchWaitsForItsSync() {
        var h = Harness()
        h.client(Wire.parse("", "SELECT 1") + Wire.bind(""))
        XCTAssertEqual(h.out.types(to: .main), "", "a batch is routed as a whole")
        h.client(Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBES")
    }

    func testNamedStatementIsPreparedOnDemandElsewhere() {
        var h = Harness()
        h.opened(.writeable)
        // Prepared on main.
        h.client(Wire.parse("s1", "SELECT $1::int") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        // Inside a read-write transaction the statement runs on writeable, which never saw it.
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        h.client(Wire.bind("s1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "DS", "main's copy is described first")
        h.passShapeCheck(on: .writeable, status: "T")
        XCTAssertEqual(h.out.types(to: .writeable), "CPDSBES", "prepared and described there, then the client's batch")
        // The proxy's own answers are swallowed; the client sees only its own.
        h.backend(.writeable, Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        XCTAssertEqual(h.out.clientTypes(), "2CZ")
        // Once prepared there, it is not prepared again.
        h.reset()
        h.client(Wire.bind("s1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "BES")
    }

    /// One batch parses the same name twice: the later text is the statement, and is what another
    /// backend gets prepared — the unnamed statement with its first Parse matching the stored text
    /// or not, and a named one closed between the two (PostgreSQL refuses to parse an existing
    /// named statement again without a Close).
    func testTheLastParseOfANameInABatchIsTheStatement() {
        let answer = Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1")
        for (name, stored, close) in [("", "SELECT 1", false), ("", "SELECT 0", false), ("s1", "SELECT 1", true)] {
            var h = Harness()
            h.opened(.writeable)
            h.client(Wire.parse(name, stored) + Wire.sync)
            h.backend(.main, Wire.parseComplete + Wire.ready())
            var batch = Wire.parse(name, "SELECT 1") + Wire.bind(name) + Wire.execute()
            if close { batch += Wire.close(statement: name) }
            batch += Wire.parse(name, "SELECT 2") + Wire.bind(name) + Wire.execute() + Wire.sync
            h.client(batch)
            h.backend(.main, answer + (close ? Wire.closeComplete : []) + answer + Wire.ready())
            // BEGIN through the extended protocol: a simple Query would drop the unnamed statement.
            h.client(Wire.parse("b", "BEGIN READ WRITE") + Wire.bind("b") + Wire.execute() + Wire.sync)
            h.backend(.writeable, answer + Wire.ready("T"))
            h.reset()
            h.client(Wire.bind(name) + Wire.execute() + Wire.sync)
            h.passShapeCheck(on: .writeable, status: "T")
            XCTAssertEqual(h.out.types(to: .writeable), "CPDSBES", "stored \(stored), close \(close)")
            XCTAssertEqual(h.out.parsedTexts(to: .writeable), ["SELECT 2"], "stored \(stored), close \(close)")
        }
    }

    /// The unnamed statement re-parsed with the text it already has keeps it; another text replaces it.
    func testUnnamedStatementFollowsItsLatestParse() {
        var h = Harness()
        h.opened(.writeable)
        let answer = Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready()
        for text in ["SELECT 1", "SELECT 1", "SELECT 3"] {
            h.client(Wire.parse("", text) + Wire.bind("") + Wire.execute() + Wire.sync)
            h.backend(.main, answer)
        }
        // BEGIN through the extended protocol: a simple Query would drop the unnamed statement.
        h.client(Wire.parse("b", "BEGIN READ WRITE") + Wire.bind("b") + Wire.execute() + Wire.sync)
        h.backend(.writeable, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.reset()
        h.client(Wire.bind("") + Wire.execute() + Wire.sync)
        h.passShapeCheck(on: .writeable, status: "T")
        XCTAssertEqual(h.out.parsedTexts(to: .writeable), ["SELECT 3"])
    }

    /// A simple Query drops the unnamed statement (PostgreSQL does, on the backend that runs it): a
    /// Bind of it afterwards must get PostgreSQL's 26000 from whichever backend it goes to, never run
    /// the old statement — there, or prepared anew elsewhere.
    func testASimpleQueryDropsTheUnnamedStatement() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("", "SELECT a FROM t") + Wire.bind("") + Wire.execute() + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.backend(.writeable, Wire.commandComplete("INSERT 0 1") + Wire.ready())
        h.reset()
        h.client(Wire.bind("") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "CBES", "main's old unnamed statement is closed first")
        XCTAssertEqual(h.out.parsedTexts(to: .writeable) + h.out.parsedTexts(to: .main), [])
        h.backend(.main, Wire.closeComplete + Wire.error("26000") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "EZ", "the proxy's CloseComplete is not the client's")
    }

    func testClosedStatementIsNotPreparedAgain() {
        var h = Harness()
        h.client(Wire.parse("s1", "SELECT 1") + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.ready())
        h.client(Wire.close(statement: "s1") + Wire.sync)
        h.backend(.main, Wire.closeComplete + Wire.ready())
        h.reset()
        h.client(Wire.parse("s1", "SELECT 2") + Wire.bind("s1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBES")
    }

    func testSessionSetIsReplayedToABackendOpenedLater() {
        var h = Harness()
        h.client(Wire.query("SET search_path = app, public"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.opened(.writeable)
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SET search_path = app, public", "INSERT INTO t VALUES (1)"])
        // The replay's answer is swallowed; only the INSERT's reaches the client.
        h.reset()
        h.backend(.writeable, Wire.commandComplete("SET") + Wire.ready() + Wire.commandComplete("INSERT 0 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "CZ")
    }

    func testFailedSetIsNotReplayed() {
        var h = Harness()
        h.client(Wire.query("SET statement_timeout = 'soon'"))
        h.backend(.main, Wire.error("42601") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.opened(.writeable)
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["INSERT INTO t VALUES (1)"])
    }

    func testSetInsideRolledBackTransactionIsForgotten() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.client(Wire.query("SET work_mem = '64MB'"))
        h.backend(.writeable, Wire.commandComplete("SET") + Wire.ready("T"))
        h.client(Wire.query("ROLLBACK"))
        h.backend(.writeable, Wire.commandComplete("ROLLBACK") + Wire.ready("I"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1"])
    }

    func testSetInsideCommittedTransactionReachesTheOtherBackend() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.client(Wire.query("SET work_mem = '64MB'"))
        h.backend(.writeable, Wire.commandComplete("SET") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready("I"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SET work_mem = '64MB'", "SELECT 1"])
    }

    func testTemporaryTablePinsTheSessionToWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("CREATE TEMP TABLE scratch (a int)"))
        h.backend(.writeable, Wire.commandComplete("CREATE TABLE") + Wire.ready())
        h.client(Wire.query("SELECT * FROM scratch"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "SELECT * FROM scratch")
        XCTAssertEqual(h.session.pinned, .temporaryTable)
    }

    /// asyncpg's pool sends this at every release: it must not tie the session to writeable, nor need
    /// the primary at all (a session holding no lock and listening to nothing has nothing to undo
    /// there), or reads through the pool would fail while the primary is down.
    func testPoolResetQueryRunsOnMainAndDoesNotPinTheSession() {
        var h = Harness()
        h.opened(.writeable)
        let reset = "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"
        h.client(Wire.query(reset))
        XCTAssertEqual(h.out.sentQueries(to: .main).last, reset)
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [])
        h.backend(.main, Wire.commandComplete("SELECT 1") + Wire.commandComplete("CLOSE CURSOR ALL")
                  + Wire.commandComplete("UNLISTEN") + Wire.commandComplete("RESET") + Wire.ready())
        XCTAssertNil(h.session.pinned)
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).last, "SELECT 1")
    }

    /// pgJDBC's plain Statement and psycopg 3 without parameters Parse a new text for every statement,
    /// values written in: each is routed by its own text, a literal change reusing the classification
    /// and any other change classified afresh.
    func testParsedTextsWithOtherValuesRouteByTheirText() {
        var h = Harness()
        h.opened(.writeable)
        let texts: [(String, BackendRole)] = [("SELECT v FROM t WHERE id = 1", .main), ("SELECT v FROM t WHERE id = 2", .main),
                                              ("SELECT v FROM t WHERE id = 3 FOR UPDATE", .writeable),
                                              ("SELECT v FROM t WHERE id = -4", .main),
                                              ("SELECT v FROM t WHERE id = 5; DELETE FROM t", .writeable)]
        for (sql, role) in texts {
            h.client(Wire.parse("", sql) + Wire.bind("") + Wire.execute() + Wire.sync)
            XCTAssertEqual(h.out.parsedTexts(to: role).last, sql)
            h.backend(role, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        }
    }

    /// A session that LISTENs is pinned to writeable, so its UNLISTEN reaches the listener there.
    func testUnlistenOfAListeningSessionRunsWhereItListens() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("LISTEN jobs"))
        h.backend(.writeable, Wire.commandComplete("LISTEN") + Wire.ready())
        h.client(Wire.query("UNLISTEN *"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "UNLISTEN *")
    }

    /// COMMIT / ROLLBACK with no transaction open only warn, on a standby too: they need not wait for
    /// writeable. Inside a transaction they go where it runs.
    func testCommitAndRollbackOutsideATransactionRunOnMain() {
        var h = Harness()
        h.opened(.writeable)
        for statement in ["ROLLBACK", "COMMIT", "END", "ABORT"] {
            h.client(Wire.query(statement))
            XCTAssertEqual(h.out.sentQueries(to: .main).last, statement)
            h.backend(.main, Wire.commandComplete(statement == "END" || statement == "COMMIT" ? "COMMIT" : "ROLLBACK") + Wire.ready())
        }
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [])
        h.client(Wire.query("BEGIN; INSERT INTO t VALUES (1)"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.commandComplete("INSERT 0 1") + Wire.ready("T"))
        h.client(Wire.query("ROLLBACK"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "ROLLBACK")
    }

    func testResetRoleAloneDoesNotPinButAChangedRoleStaysPinned() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("RESET ROLE"))
        h.backend(.writeable, Wire.commandComplete("RESET") + Wire.ready())
        XCTAssertNil(h.session.pinned)
        h.client(Wire.query("SET ROLE reporting"))
        h.backend(.writeable, Wire.commandComplete("SET") + Wire.ready())
        XCTAssertEqual(h.session.pinned, .role)
        h.client(Wire.query("RESET ROLE"))
        h.backend(.writeable, Wire.commandComplete("RESET") + Wire.ready())
        XCTAssertEqual(h.session.pinned, .role, "reads as the changed role must not have gone to main meanwhile")
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "SELECT 1")
    }

    func testSessionAdvisoryLockPinsTheSession() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT pg_advisory_lock(42)"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.session.pinned, .advisoryLock)
        h.client(Wire.query("SELECT pg_advisory_unlock(42)"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "SELECT pg_advisory_unlock(42)")
    }

    func testErrorInsideTransactionKeepsItOnItsBackend() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ WRITE"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T"))
        h.client(Wire.query("SELECT 1/0"))
        h.backend(.writeable, Wire.error("22012") + Wire.ready("E"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "SELECT 1", "the backend answers 25P02 itself")
        XCTAssertEqual(h.out.types(to: .main), "")
    }

    func testBackendThatCannotOpenAnswersTheClient() {
        var h = Harness()
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.session.backendOpenFailed(.writeable, error: Wire.error("08006"))
        h.pump()
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        // The session keeps serving reads.
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1"])
    }

    func testFailedOpenAnswersAWholeBatchOnce() {
        var h = Harness()
        h.client(Wire.parse("", "INSERT INTO t VALUES (1)") + Wire.bind("") + Wire.execute() + Wire.sync)
        h.session.backendOpenFailed(.writeable, error: Wire.error("08006"))
        h.pump()
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        XCTAssertTrue(h.pendingClient.isEmpty)
    }

    func testBackendLostMidUnitEndsTheSessionWithAnError() {
        var h = Harness()
        h.client(Wire.query("SELECT pg_sleep(10)"))
        h.session.backendClosed(.main, &h.out)
        XCTAssertEqual(h.out.clientTypes(), "E")
        XCTAssertTrue(h.out.events.contains { if case .close = $0 { return true } else { return false } })
    }

    private static func fatal(_ code: String, _ message: String) -> [UInt8] {
        Wire.message("E", Wire.cstr("SFATAL") + Wire.cstr("VFATAL") + Wire.cstr("C" + code) + Wire.cstr("M" + message) + [0])
    }

    private func clientBytes(_ h: Harness) -> [UInt8] {
        h.out.events.flatMap { if case .toClient(let bytes) = $0 { return bytes } else { return [] } }
    }

    /// idle_in_transaction_session_timeout: the server says why before it closes, between statements.
    /// The client hears those words (25P03), not a proxy's guess.
    func testAServersFatalBetweenStatementsReachesTheClientWhenItEndsTheSession() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN; INSERT INTO t VALUES (1)"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.commandComplete("INSERT 0 1") + Wire.ready("T"))
        let before = h.out.events.count
        let timeout = Self.fatal("25P03", "terminating connection due to idle-in-transaction timeout")
        h.backend(.writeable, timeout)
        XCTAssertEqual(h.out.events.count, before, "held until the server closes")
        h.session.backendClosed(.writeable, &h.out)
        XCTAssertEqual(Array(clientBytes(h).suffix(timeout.count)), timeout)
        XCTAssertEqual(h.out.clientTypes().filter { $0 == "E" }.count, 1, "one FATAL")
        XCTAssertTrue(h.out.events.contains { if case .close = $0 { return true } else { return false } })
    }

    /// A FATAL the server sent while running the client's statement was forwarded: the close adds nothing.
    func testAForwardedFatalIsNotFollowedByAnotherOne() {
        var h = Harness()
        h.opened(.main)
        h.client(Wire.query("SELECT pg_sleep(10)"))
        h.backend(.main, Self.fatal("57P01", "terminating connection due to administrator command"))
        h.session.backendClosed(.main, &h.out)
        XCTAssertEqual(h.out.clientTypes(), "E")
        XCTAssertTrue(String(decoding: clientBytes(h), as: UTF8.self).contains("57P01"))
    }

    /// A server closing an idle backend the session can do without: the client hears nothing, also
    /// when the server said why.
    func testAnIdleBackendsFatalIsNotPassedOn() {
        var h = Harness()
        h.opened(.main)
        h.backend(.main, Self.fatal("57P01", "terminating connection due to administrator command"))
        h.session.backendClosed(.main, &h.out)
        XCTAssertEqual(h.out.clientTypes(), "")
        XCTAssertFalse(h.out.events.contains { if case .close = $0 { return true } else { return false } })
    }

    /// WITH HOLD cursors declared on main live only there: losing main ends the session, as PostgreSQL
    /// would, instead of a later FETCH finding no cursor.
    func testLosingMainWithAHoldCursorOnItEndsTheSession() {
        var h = Harness()
        h.opened(.main)
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("DECLARE c CURSOR WITH HOLD FOR SELECT 1"))
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("DECLARE CURSOR") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.main, Wire.commandComplete("COMMIT") + Wire.ready())
        XCTAssertNil(h.session.transaction)
        h.session.backendClosed(.main, &h.out)
        XCTAssertTrue(String(decoding: clientBytes(h), as: UTF8.self).contains("08006"))
        XCTAssertTrue(h.out.events.contains { if case .close = $0 { return true } else { return false } })
    }

    func testIdleBackendLossIsSurvived() {
        var h = Harness()
        h.opened(.writeable)
        h.session.backendClosed(.writeable, &h.out)
        XCTAssertEqual(h.out.clientTypes(), "")
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        XCTAssertTrue(h.out.events.contains(.open(.writeable)), "reopened on demand")
    }

    func testInvalidLengthIsAProtocolViolation() {
        var h = Harness()
        h.client([UInt8(ascii: "Q"), 0, 0, 0, 2])
        XCTAssertEqual(h.out.clientTypes(), "E")
        guard case .toClient(let bytes)? = h.out.events.first else { return XCTFail("no error sent") }
        XCTAssertTrue(String(decoding: bytes, as: UTF8.self).contains("08P01"))
        XCTAssertTrue(h.session.closed)
    }

    func testUnexpectedMessageTypeIsAProtocolViolation() {
        var h = Harness()
        h.client(Wire.message("p", Wire.cstr("secret")))
        XCTAssertTrue(h.session.closed)
    }

    func testTerminateClosesTheSession() {
        var h = Harness()
        h.client(Wire.terminate)
        XCTAssertEqual(h.out.events, [.close("client terminated")])
    }

    func testCopyDataFollowsTheCopyUnit() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("COPY t FROM STDIN"))
        h.backend(.writeable, Wire.message("G", [0, 0, 0]))
        h.client(Wire.message("d", Array("1\n".utf8)) + Wire.message("c", []))
        XCTAssertEqual(h.out.types(to: .writeable), "Qdc")
    }

    func testCancelTargetsTheBackendRunningTheStatement() {
        var h = Harness()
        h.opened(.writeable)
        XCTAssertNil(h.session.activeBackend)
        h.client(Wire.query("UPDATE t SET a = 1"))
        XCTAssertEqual(h.session.activeBackend, .writeable)
        h.backend(.writeable, Wire.commandComplete("UPDATE 1") + Wire.ready())
        XCTAssertNil(h.session.activeBackend)
    }
}

final class SessionStateTests: XCTestCase {
    func testSetInsideLongerQueryStringIsReplayedAlone() {
        var h = Harness()
        h.client(Wire.query("SET search_path = app; SELECT 1"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.opened(.writeable)
        XCTAssertEqual(h.out.sentQueries(to: .writeable),
                       ["SELECT pg_catalog.set_config('search_path', 'app', false)", "INSERT INTO t VALUES (1)"])
    }

    func testSetConfigInSelectIsSessionState() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT set_config('application_name', 'x', false)"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).first, "SELECT set_config('application_name', 'x', false)")
    }

    /// psycopg 3, asyncpg and Django bind set_config's value: it is copied with the bound value (a text
    /// or binary parameter alike), not as the text `$1`.
    func testSetConfigOfABoundValueIsCopiedWithTheValue() {
        var h = Harness()
        h.opened(.writeable)
        let bind = Wire.message("B", Wire.cstr("") + Wire.cstr("") + [0, 1, 0, 1] + [0, 1] + [0, 0, 0, 4] + Array("acme".utf8))
        h.client(Wire.parse("", "SELECT set_config('app.tenant', $1, false)") + bind + Wire.execute() + Wire.sync)
        h.backend(.writeable, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).first, "SELECT pg_catalog.set_config('app.tenant', 'acme', false)")
    }

    /// asyncpg prepares (Parse, Describe, Flush) before it binds: the value comes with the rest.
    func testSetConfigOfAValueBoundAfterAFlushIsCopiedWithTheValue() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("__s1", "SELECT set_config('app.tenant', $1, false)") + Wire.describe(statement: "__s1") + Wire.flush)
        h.backend(.writeable, Wire.parseComplete + Wire.message("t", [0, 1, 0, 0, 0, 25]) + Wire.message("T", [0, 0]))
        let bind = Wire.message("B", Wire.cstr("") + Wire.cstr("__s1") + [0, 1, 0, 1] + [0, 1] + [0, 0, 0, 4] + Array("acme".utf8))
        h.client(bind + Wire.execute() + Wire.sync)
        h.backend(.writeable, Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).first, "SELECT pg_catalog.set_config('app.tenant', 'acme', false)")
    }

    /// A set_config whose value is computed (or whose name is) would give another value elsewhere: the
    /// session stays on writeable, where it ran.
    func testSetConfigOfAComputedValuePinsTheSession() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SELECT set_config('app.req', md5(random()::text), false)"))
        h.backend(.writeable, Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Wire.query("SELECT current_setting('app.req')"))
        XCTAssertEqual(h.out.sentQueries(to: .main), [])
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "SELECT current_setting('app.req')")
    }

    /// A SET undone by ROLLBACK TO SAVEPOINT is not copied to main at COMMIT; one kept by RELEASE is.
    func testASettingRolledBackToASavepointIsNotCopied() {
        var h = Harness()
        h.opened(.writeable)
        let steps: [(String, String)] = [("BEGIN", "BEGIN"), ("SAVEPOINT s", "SAVEPOINT"), ("SET work_mem = '1MB'", "SET"),
                                         ("ROLLBACK TO SAVEPOINT s", "ROLLBACK"), ("SAVEPOINT t", "SAVEPOINT"),
                                         ("SET search_path = app", "SET"), ("RELEASE t", "RELEASE"), ("COMMIT", "COMMIT")]
        for (sql, tag) in steps {
            h.client(Wire.query(sql))
            if sql == "BEGIN" { continue }  // held until the next statement
            let begin = h.out.sentQueries(to: .writeable).last == "SAVEPOINT s" && tag == "SAVEPOINT"
                ? Wire.commandComplete("BEGIN") + Wire.ready("T") : []
            h.backend(.writeable, begin + Wire.commandComplete(tag) + Wire.ready(sql == "COMMIT" ? "I" : "T"))
        }
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SET search_path = app", "SELECT 1"],
                       "only the setting the transaction kept")
    }

    /// PREPARE is not undone by ROLLBACK: the statement prepared in a rolled-back transaction runs on
    /// main afterwards, prepared there first.
    func testSQLPrepareInARolledBackTransactionStays() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("PREPARE ps2 AS SELECT 2"))
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("PREPARE") + Wire.ready("T"))
        h.client(Wire.query("ROLLBACK"))
        h.backend(.writeable, Wire.commandComplete("ROLLBACK") + Wire.ready("I"))
        h.client(Wire.query("EXECUTE ps2"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["PREPARE ps2 AS SELECT 2", "EXECUTE ps2"])
    }

    func testResetAllReplacesEarlierSettings() {
        var h = Harness()
        h.client(Wire.query("SET work_mem = '8MB'"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.query("RESET ALL"))
        h.backend(.main, Wire.commandComplete("RESET") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.opened(.writeable)
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["RESET ALL", "INSERT INTO t VALUES (1)"])
    }

    func testSQLPrepareRoutesExecuteByItsBody() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("PREPARE ins AS INSERT INTO t VALUES ($1)"))
        h.backend(.writeable, Wire.commandComplete("PREPARE") + Wire.ready())
        h.client(Wire.query("EXECUTE ins(1)"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).last, "EXECUTE ins(1)")
    }
}

final class SessionCatalogTests: XCTestCase {
    func testUnknownFunctionWaitsForTheCatalogThenRoutesByIt() {
        var h = Harness(policy: FunctionPolicy(knownFunctions: ["lower"]))
        h.client(Wire.query("SELECT fresh_fn(1)"))
        XCTAssertEqual(h.out.catalogRequests, [["fresh_fn"]])
        XCTAssertEqual(h.out.types(to: .main), "", "the statement waits for the catalog")
        // The shell learned that fresh_fn is volatile.
        h.session.classifier = Classifier(policy: FunctionPolicy(volatileFunctions: ["fresh_fn"], knownFunctions: ["lower", "fresh_fn"]))
        h.pump()
        XCTAssertTrue(h.out.events.contains(.open(.writeable)))
    }

    /// The unnamed statement parsed again with the same text keeps its stored class — until the
    /// classifier changes: then the same text is classified afresh.
    func testRepeatedParseIsReclassifiedAfterTheCatalogChanges() {
        var h = Harness(policy: FunctionPolicy(knownFunctions: ["stamp"]))
        h.opened(.writeable)
        let batch = Wire.parse("", "SELECT stamp($1)") + Wire.bind("") + Wire.execute() + Wire.sync
        let answer = Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready()
        h.client(batch)
        h.backend(.main, answer)
        h.client(batch)
        h.backend(.main, answer)
        XCTAssertEqual(h.out.types(to: .main), "PBESPBES", "a read-safe function: both runs on main")
        XCTAssertEqual(h.out.types(to: .writeable), "")
        // A refresh learned that stamp() writes.
        h.session.classifier = Classifier(policy: FunctionPolicy(volatileFunctions: ["stamp"], knownFunctions: ["stamp"]))
        h.client(batch)
        XCTAssertEqual(h.out.types(to: .writeable), "PBES", "the same text now goes to writeable")
    }

    func testNameStillUnknownAfterRefreshGoesToWriteable() {
        var h = Harness(policy: FunctionPolicy(knownFunctions: ["lower"]))
        h.opened(.writeable)
        h.client(Wire.query("SELECT ghost(1)"))
        XCTAssertEqual(h.out.catalogRequests.count, 1)
        h.pump()  // refreshed, but the classifier still does not know it
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["SELECT ghost(1)"])
        XCTAssertEqual(h.out.catalogRequests.count, 1, "no second refresh for the same unit")
    }
}

final class SessionDeferredBeginTests: XCTestCase {
    func testPlainBeginThenSetTransactionReadOnlyRunsOnMain() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN"))
        XCTAssertEqual(h.out.clientTypes(), "CZ", "BEGIN is answered at once")
        XCTAssertEqual(h.out.types(to: .main) + h.out.types(to: .writeable), "", "and held")
        h.client(Wire.query("SET TRANSACTION READ ONLY"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN", "SET TRANSACTION READ ONLY"])
        h.reset()
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SET") + Wire.ready("T"))
        XCTAssertEqual(h.out.clientTypes(), "CZ", "the held BEGIN's answer is swallowed")
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main).last, "SELECT 1")
        XCTAssertEqual(h.out.types(to: .writeable), "")
    }

    func testPlainBeginThenAWriteRunsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT 1"],
                       "a read-write transaction is never split, even when it starts with a read")
        XCTAssertEqual(h.session.transaction, .writeable)
    }

    /// A read-only session may still make one transaction read-write: a standby would refuse
    /// `SET TRANSACTION READ WRITE`, so the held BEGIN goes to writeable with it.
    func testReadOnlySessionBeginThenSetTransactionReadWriteRunsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("SET default_transaction_read_only = on"))
        h.backend(.main, Wire.commandComplete("SET") + Wire.ready())
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("SET TRANSACTION READ WRITE"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).suffix(2), ["BEGIN", "SET TRANSACTION READ WRITE"])
        XCTAssertEqual(h.session.transaction, .writeable)
    }

    /// BEGIN READ ONLY is held too: a serializable read-only transaction needs the primary (a standby
    /// refuses serializable mode); without a SET TRANSACTION it runs on main.
    func testBeginReadOnlyThenSerializableRunsOnWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        XCTAssertEqual(h.out.clientTypes(), "CZ")
        h.client(Wire.query("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"])
        XCTAssertEqual(h.out.types(to: .main), "")
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SET") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "SELECT 1"])
    }

    /// A read-only transaction must see the session's own writes like any read: while main has not
    /// replayed them (or is down), the held BEGIN READ ONLY and its transaction go to writeable.
    func testReadOnlyTransactionWaitsForTheSessionsWritesLikeAnyRead() {
        var h = Harness()
        h.opened(.writeable)
        h.session.readsToWriteable = true
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT count(*) FROM t"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY", "SELECT count(*) FROM t"])
        XCTAssertEqual(h.out.types(to: .main), "")
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SELECT 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        // The same through a plain BEGIN made read-only by SET TRANSACTION, and by the session default.
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("SET TRANSACTION READ ONLY"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).suffix(2), ["BEGIN", "SET TRANSACTION READ ONLY"])
        h.backend(.writeable, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("SET") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.writeable, Wire.commandComplete("COMMIT") + Wire.ready())
        // Once main has caught up, read-only transactions go back to it.
        h.session.readsToWriteable = false
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "SELECT 1"])
    }

    /// What a standby refuses even in a read-only transaction, as the transaction's first statement,
    /// takes the whole (still read-only) transaction to the primary.
    func testReadOnlyTransactionStartingWithWhatAStandbyRefusesRunsOnWriteable() {
        for first in ["NOTIFY chan, 'x'", "LOCK TABLE t IN ROW EXCLUSIVE MODE", "ANALYZE t", "SELECT pg_current_xact_id()"] {
            var h = Harness()
            h.opened(.writeable)
            h.client(Wire.query("BEGIN READ ONLY"))
            h.client(Wire.query(first))
            XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN READ ONLY", first], first)
            XCTAssertEqual(h.out.types(to: .main), "", first)
        }
        // Asking whether the transaction is read-only is no such statement: main answers "on" too.
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("SHOW transaction_read_only"))
        XCTAssertEqual(h.out.sentQueries(to: .main), ["BEGIN READ ONLY", "SHOW transaction_read_only"])
    }

    /// A WITH HOLD cursor declared in a read-only transaction lives on main after the COMMIT: FETCH
    /// and CLOSE of it go there even while reads go to writeable (after the session's write).
    func testHoldCursorFromAReadOnlyTransactionIsFetchedOnMain() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("BEGIN READ ONLY"))
        h.client(Wire.query("DECLARE c CURSOR WITH HOLD FOR SELECT g FROM generate_series(1, 3) g"))
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("DECLARE CURSOR") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.main, Wire.commandComplete("COMMIT") + Wire.ready())
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        h.backend(.writeable, Wire.commandComplete("INSERT 0 1") + Wire.ready())
        h.session.readsToWriteable = true
        h.client(Wire.query("FETCH 2 FROM c"))
        h.backend(.main, Wire.commandComplete("FETCH 2") + Wire.ready())
        // A transaction that starts by fetching from it runs there too.
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("FETCH 1 FROM c"))
        h.backend(.main, Wire.commandComplete("BEGIN") + Wire.ready("T") + Wire.commandComplete("FETCH 1") + Wire.ready("T"))
        h.client(Wire.query("COMMIT"))
        h.backend(.main, Wire.commandComplete("COMMIT") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .main).suffix(3), ["BEGIN", "FETCH 1 FROM c", "COMMIT"])
        h.client(Wire.query("CLOSE c"))
        h.backend(.main, Wire.commandComplete("CLOSE CURSOR") + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .main).suffix(5), ["FETCH 2 FROM c", "BEGIN", "FETCH 1 FROM c", "COMMIT", "CLOSE c"])
        XCTAssertEqual(h.out.started.last.map { "\($0.0) \($0.1)" }, "main holdCursorOnMain")
        // Declared again outside a transaction, it lives on writeable (and pins the session there).
        h.client(Wire.query("DECLARE c CURSOR WITH HOLD FOR SELECT 1"))
        h.backend(.writeable, Wire.commandComplete("DECLARE CURSOR") + Wire.ready())
        h.client(Wire.query("FETCH c"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable).suffix(2), ["DECLARE c CURSOR WITH HOLD FOR SELECT 1", "FETCH c"])
    }

    /// The held BEGIN is answered with the tag the server would use; a BEGIN with modes PostgreSQL
    /// refuses is not held (the client must see the server's error, not a made-up BEGIN).
    func testHeldBeginAnswersWithItsOwnTagAndABadOneIsNotHeld() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("START TRANSACTION"))
        XCTAssertEqual(h.out.events, [.toClient(Wire.commandComplete("START TRANSACTION") + Wire.ready("T"))])
        h.client(Wire.query("ROLLBACK"))
        h.reset()
        h.client(Wire.query("BEGIN ISOLATION LEVEL FOO"))
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["BEGIN ISOLATION LEVEL FOO"])
        h.backend(.writeable, Wire.error("42601") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        XCTAssertNil(h.session.transaction)
    }

    func testEmptyTransactionIsAnsweredWithoutABackend() {
        var h = Harness()
        h.client(Wire.query("BEGIN"))
        h.client(Wire.query("COMMIT"))
        XCTAssertEqual(h.out.clientTypes(), "CZCZ")
        XCTAssertFalse(h.out.events.contains(.open(.writeable)))
        XCTAssertTrue(h.session.isIdle)
    }
}
