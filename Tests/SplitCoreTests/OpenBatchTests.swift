import SplitCore
import StatementClassifier
import XCTest

/// Batches the client leaves open at a Flush (asyncpg prepares with Parse / Describe / Flush; psycopg's
/// pipeline flushes to fetch a result midway), and what the client sends after them.
final class OpenBatchTests: XCTestCase {
    static let read = Wire.parse("", "SELECT a FROM t") + Wire.bind("") + Wire.execute()
    static let write = Wire.parse("", "INSERT INTO t VALUES (1)") + Wire.bind("") + Wire.execute()

    /// A read flushed on main, then a write before any Sync: main cannot run the write. The proxy ends
    /// the batch on main with its own Sync, waits for its answer, and sends the write to writeable;
    /// the client sees one ReadyForQuery, writeable's.
    func testAWriteAfterAFlushedReadGoesToWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Self.read + Wire.flush)
        XCTAssertEqual(h.out.types(to: .main), "PBEH")
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1"))
        h.client(Self.write + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBEHS", "the proxy's own Sync ends the batch on main")
        XCTAssertEqual(h.out.types(to: .writeable), "", "the write waits for main's answer")
        h.backend(.main, Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "PBES")
        XCTAssertEqual(h.out.parsedTexts(to: .writeable), ["INSERT INTO t VALUES (1)"])
        h.backend(.writeable, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("INSERT 0 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "12C12CZ", "main's ReadyForQuery belongs to the proxy's Sync")
        XCTAssertFalse(h.session.hasUnitsInFlight)
    }

    /// The flushed read failed: PostgreSQL skips everything up to the client's Sync, so the write
    /// must not run anywhere; the client's Sync is answered.
    func testAWriteAfterAFailedFlushedReadIsSkippedUpToTheSync() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Self.read + Wire.flush)
        // An error writeable would give too (one it may answer otherwise is asked there again:
        // MainRefusalTests).
        h.backend(.main, Wire.error("22012"))
        h.client(Self.write + Wire.sync)
        h.backend(.main, Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "", "the write was skipped")
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        // The session goes on: the next batch is routed afresh.
        h.client(Self.write + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "PBES")
    }

    /// More reads after the Flush stay in the open batch on main, as before.
    func testReadsAfterAFlushStayInTheOpenBatch() {
        var h = Harness()
        h.client(Wire.parse("s1", "SELECT a FROM t") + Wire.describe(statement: "s1") + Wire.flush)
        h.client(Wire.bind("s1") + Wire.execute() + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PDHBES")
        XCTAssertFalse(h.out.events.contains(.open(.writeable)))
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "12CZ")
    }

    /// A prepared write bound after a flushed read is a write too (its class is remembered).
    func testBindingAPreparedWriteAfterAFlushedReadGoesToWriteable() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("w", "DELETE FROM t") + Wire.sync)
        h.backend(.writeable, Wire.parseComplete + Wire.ready())
        h.client(Self.read + Wire.flush)
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1"))
        h.client(Wire.bind("w") + Wire.execute() + Wire.sync)
        h.backend(.main, Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "PSBES")
    }

    /// asyncpg: Parse / Describe / Flush of a read, then a plain Query that writes. The open batch
    /// ends with the proxy's Sync and the Query is its own unit on writeable; before, it was sent to
    /// main and the client waited for a second ReadyForQuery that never came.
    func testAQueryAfterAnOpenBatchIsAUnitOfItsOwn() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("s1", "SELECT a FROM t") + Wire.describe(statement: "s1") + Wire.flush)
        h.backend(.main, Wire.parseComplete)
        h.client(Wire.query("INSERT INTO t VALUES (1)"))
        XCTAssertEqual(h.out.types(to: .main), "PDHS")
        XCTAssertEqual(h.out.sentQueries(to: .writeable), [], "one backend at a time: main's unit ends first")
        h.backend(.main, Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .writeable), ["INSERT INTO t VALUES (1)"])
        h.backend(.writeable, Wire.commandComplete("INSERT 0 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "1CZ")
        XCTAssertFalse(h.session.hasUnitsInFlight)
        // A read Query after an open batch on main: same backend, still one ReadyForQuery per Query.
        h.client(Wire.parse("s2", "SELECT b FROM t") + Wire.describe(statement: "s2") + Wire.flush)
        h.client(Wire.query("SELECT 1"))
        XCTAssertEqual(h.out.sentQueries(to: .main), [], "the Query waits for the batch's end")
        h.backend(.main, Wire.parseComplete + Wire.ready())
        XCTAssertEqual(h.out.sentQueries(to: .main), ["SELECT 1"])
        h.backend(.main, Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "1CZ1CZ")
        XCTAssertFalse(h.session.hasUnitsInFlight)
    }

    /// A Query after a batch that failed before the client's Sync: PostgreSQL skips the Query (and
    /// everything else) up to the Sync, and answers the Sync. Nothing may run.
    func testAQueryAfterAFailedOpenBatchIsSkippedUpToTheSync() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Self.read + Wire.flush + Wire.query("INSERT INTO t VALUES (1)") + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBEHS")
        h.backend(.main, Wire.error("22012") + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "")
        XCTAssertEqual(h.out.types(to: .main), "PBEHS")
        XCTAssertEqual(h.out.clientTypes(), "EZ")
        XCTAssertFalse(h.session.hasUnitsInFlight)
    }

    /// A fast-path call after an open batch is answered once that batch has ended.
    func testAFunctionCallAfterAnOpenBatchRuns() {
        var h = Harness()
        h.opened(.writeable)
        let call = Wire.message("F", [0, 0, 0, 177, 0, 0, 0, 0, 0, 0])
        h.client(Self.read + Wire.flush + call + Wire.sync)
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        XCTAssertEqual(h.out.types(to: .writeable), "F")
        h.backend(.writeable, Wire.message("V", [0, 0, 0, 0]) + Wire.ready())
        h.backend(.main, Wire.ready())
        XCTAssertEqual(h.out.types(to: .main), "PBEHSS", "the client's own Sync is a unit of its own")
        XCTAssertEqual(h.out.clientTypes(), "12CVZZ")
        XCTAssertFalse(h.session.hasUnitsInFlight)
    }

    /// psycopg ends a pipeline with Sync and then a bare Flush. The Flush has nothing to flush and
    /// must not tie the next statement to the backend used last.
    func testABareFlushOpensNoBatch() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Self.read + Wire.sync + Wire.flush)
        h.backend(.main, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("SELECT 1") + Wire.ready())
        h.client(Self.write + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBES")
        XCTAssertEqual(h.out.types(to: .writeable), "PBES")
        h.backend(.writeable, Wire.parseComplete + Wire.bindComplete + Wire.commandComplete("INSERT 0 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "12CZ12CZ")
    }

    /// tokio-postgres copies with Parse / Bind / Execute / Sync, then the data, CopyDone and another
    /// Sync. PostgreSQL ignores the first Sync in copy-in mode; the unit ends at the second, which must
    /// follow the copy to its backend rather than start a unit that waits for it.
    func testAnExtendedCopyEndsAtTheSyncAfterTheData() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.parse("", "COPY t FROM STDIN") + Wire.bind("") + Wire.execute() + Wire.sync)
        h.backend(.writeable, Wire.parseComplete + Wire.bindComplete + Wire.message("G", [0, 0, 0]))
        h.client(Wire.message("d", Array("1\n".utf8)) + Wire.sync + Wire.message("c", []) + Wire.sync)
        XCTAssertEqual(h.out.types(to: .writeable), "PBESdScS", "a stray Sync mid-copy follows the data")
        XCTAssertEqual(h.out.types(to: .main), "")
        h.backend(.writeable, Wire.commandComplete("COPY 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "12GCZ")
        XCTAssertFalse(h.session.hasUnitsInFlight)
        // The session goes on: the next read goes to main.
        h.client(Self.read + Wire.sync)
        XCTAssertEqual(h.out.types(to: .main), "PBES")
    }

    /// A stray Sync inside a simple-protocol COPY is ignored by PostgreSQL, and starts nothing here.
    func testASyncInsideASimpleCopyStartsNothing() {
        var h = Harness()
        h.opened(.writeable)
        h.client(Wire.query("COPY t FROM STDIN"))
        h.backend(.writeable, Wire.message("G", [0, 0, 0]))
        h.client(Wire.message("d", Array("1\n".utf8)) + Wire.sync + Wire.message("c", []))
        XCTAssertEqual(h.out.types(to: .writeable), "QdSc")
        h.backend(.writeable, Wire.commandComplete("COPY 1") + Wire.ready())
        XCTAssertEqual(h.out.clientTypes(), "GCZ")
        XCTAssertFalse(h.session.hasUnitsInFlight)
    }
}
