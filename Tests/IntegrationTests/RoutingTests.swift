import Foundation
import XCTest

/// Where statements run, read from the backends themselves (inet_server_port(), pg_is_in_recovery(),
/// and the rows on the primary). main = the replica, writeable = the primary.
final class RoutingTests: ProxyTestCase {
    var proxy: ProxyProcess!
    var conn: PQConnection!

    override func setUpWithError() throws {
        try super.setUpWithError()
        try makeTable("rt_items")
        let rw = try cluster.appRW()
        try rw.exec("INSERT INTO rt_items(v) VALUES ('seed')")
        try rw.exec("DROP SEQUENCE IF EXISTS rt_seq; CREATE SEQUENCE rt_seq")
        rw.finish()
        try cluster.waitForReplica()
        proxy = try startProxy()
        conn = try proxy.connect()
    }

    override func tearDown() {
        conn?.finish()
        super.tearDown()
    }

    func testSelectRunsOnReplica() throws {
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[replica, "t"]])
        XCTAssertEqual(try conn.query("SELECT v, inet_server_port() FROM rt_items"), [["seed", replica]])
    }

    func testInsertUpdateDeleteRunOnPrimary() throws {
        let m = marker("ins")
        XCTAssertEqual(try conn.query("INSERT INTO rt_items(v) VALUES ('\(m)') RETURNING inet_server_port(), pg_is_in_recovery()"),
                       [[primary, "f"]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["1"]])

        XCTAssertEqual(try conn.query("UPDATE rt_items SET v = '\(m)-u' WHERE v = '\(m)' RETURNING inet_server_port()"),
                       [[primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)-u'"), [["1"]])

        XCTAssertEqual(try conn.query("DELETE FROM rt_items WHERE v = '\(m)-u' RETURNING inet_server_port()"),
                       [[primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v LIKE '\(m)%'"), [["0"]])
    }

    func testSelectForUpdateRunsOnPrimary() throws {
        XCTAssertEqual(try conn.query("SELECT inet_server_port() FROM rt_items WHERE v = 'seed' FOR UPDATE"), [[primary]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port() FROM rt_items WHERE v = 'seed' FOR SHARE"), [[primary]])
    }

    func testWritingCTERunsOnPrimary() throws {
        let m = marker("cte")
        let rows = try conn.query("""
            WITH x AS (INSERT INTO rt_items(v) VALUES ('\(m)') RETURNING id)
            SELECT inet_server_port(), pg_is_in_recovery() FROM x
            """)
        XCTAssertEqual(rows, [[primary, "f"]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["1"]])
    }

    func testNextvalRunsOnPrimary() throws {
        let rows = try conn.query("SELECT nextval('rt_seq'), inet_server_port()")
        XCTAssertEqual(rows.first?.last, primary)
        XCTAssertEqual(try onPrimary("SELECT last_value FROM rt_seq"), [[rows.first?.first ?? "?"]])
    }

    /// A temporary table created inside a DO block lives on the primary; the session's reads follow it
    /// there (on the replica the table does not exist).
    func testTemporaryTableMadeInsideDOPinsTheSession() throws {
        // Without read-your-writes the next read would go straight to main: only the pin keeps it here.
        let proxy = try startProxy(settings: ["read_your_writes = off"])
        let conn = try proxy.connect()
        try conn.exec("DO $$BEGIN CREATE TEMP TABLE do_tmp AS SELECT 42 AS v; END$$")
        XCTAssertEqual(try conn.query("SELECT v, inet_server_port() FROM do_tmp"), [["42", primary]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[primary]])
    }

    func testMultiStatementStringWithAWriteRunsOnPrimary() throws {
        let m = marker("multi")
        let rows = try conn.query("SELECT 1; INSERT INTO rt_items(v) VALUES ('\(m)'); SELECT inet_server_port(), pg_is_in_recovery()")
        XCTAssertEqual(rows, [[primary, "f"]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["1"]])
    }

    func testMultiStatementReadOnlyStringStaysTogether() throws {
        // Whatever backend it picks, one string runs on one backend.
        let rows = try conn.query("SELECT inet_server_port(); SELECT inet_server_port()::text || '/' || pg_is_in_recovery()::text")
        XCTAssertTrue(rows == [["\(replica)/true"]] || rows == [["\(primary)/false"]], "\(rows)")
    }

    func testParenthesisedSelectRunsOnReplica() throws {
        XCTAssertEqual(try conn.query("((SELECT inet_server_port(), pg_is_in_recovery()))"), [[replica, "t"]])
    }

    func testOddStatementRunsOnPrimary() throws {
        // Valid but unusual: LOAD has no rows, so the statement logs tell where it ran.
        let m = marker("odd")
        let p0 = cluster.logOffset(.primary)
        let r0 = cluster.logOffset(.replica)
        // app_rw may not LOAD a library: the error is fine, the log still shows where it ran.
        _ = try? conn.exec("LOAD 'plpgsql' /* \(m) */")
        XCTAssertEqual(try conn.query("SELECT 1"), [["1"]], "the session goes on after the error")
        waitUntil("LOAD in a statement log") {
            !cluster.loggedStatements(.primary, containing: m, since: p0).isEmpty
                || !cluster.loggedStatements(.replica, containing: m, since: r0).isEmpty
        }
        XCTAssertFalse(cluster.loggedStatements(.primary, containing: m, since: p0).isEmpty, "LOAD should run on the primary")
        XCTAssertEqual(cluster.loggedStatements(.replica, containing: m, since: r0), [])
    }

    func testVolatileUserFunctionRunsOnPrimary() throws {
        // The classifier cannot know what a user's volatile function does: the safe side.
        let rw = try cluster.appRW()
        try rw.exec("CREATE OR REPLACE FUNCTION rt_volatile() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT inet_server_port()'")
        rw.finish()
        try cluster.waitForReplica()
        let fresh = try proxy.connect()
        XCTAssertEqual(try fresh.query("SELECT rt_volatile(), pg_is_in_recovery()"), [[primary, "f"]])
    }

    func testANewSessionDoesNotReuseTemplatesFromBeforeAFunctionChanged() throws {
        // A session passes its statement templates to the next session of its database on its loop
        // (one loop here), unless the function catalog changed in between: then `SELECT f(2)` must
        // not take the class `SELECT f(1)` had while f was stable.
        let rw = try cluster.appRW()
        try rw.exec("CREATE OR REPLACE FUNCTION rt_shelved(int) RETURNS int LANGUAGE sql STABLE AS 'SELECT inet_server_port() + $1 - $1'")
        rw.finish()
        try cluster.waitForReplica()
        let proxy = try startProxy(settings: ["workers = 1"])
        let first = try proxy.connect()
        XCTAssertEqual(try first.query("SELECT rt_shelved(1)"), [[replica]])
        XCTAssertEqual(try first.query("SELECT rt_shelved(2)"), [[replica]], "a stable function reads on the replica")
        first.finish()
        let second = try proxy.connect()
        XCTAssertEqual(try second.query("SELECT rt_shelved(3)"), [[replica]])
        // Through the proxy, so that it refreshes its catalog.
        try second.exec("CREATE OR REPLACE FUNCTION rt_shelved(int) RETURNS int LANGUAGE sql VOLATILE AS 'SELECT inet_server_port() + $1 - $1'")
        second.finish()
        try cluster.waitForReplica()
        let third = try proxy.connect()
        XCTAssertEqual(try third.query("SELECT rt_shelved(4)"), [[primary]], "a volatile function runs on the primary")
        third.finish()
    }

    func testAReadWhileWaitingForReplayDoesNotMakeTheSessionWaitAgain() throws {
        // The reads that wait for main to replay the session's write run on the primary. They write
        // nothing: had each counted as a write, a session that reads without a pause as long as a
        // health check period would never read from main again.
        let proxy = try startProxy(settings: ["health_check_period = 100ms", "read_your_writes = lsn"])
        let conn = try proxy.connect()
        let m = marker("b2b")
        XCTAssertEqual(try conn.query("INSERT INTO rt_items(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        // Long enough for main to replay the insert and for the monitor to see it, several times over.
        _ = try conn.query("SELECT pg_sleep(2)")
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), count(*) FROM rt_items WHERE v = '\(m)'"), [[replica, "1"]])
    }

    func testAReadAnsweredByThePrimaryLeavesNothingToWaitFor() throws {
        // Main's read-only user may not read this table: main refuses, the read is asked again on the
        // primary, and it wrote nothing there — the next read goes to the replica at once.
        let rw = try cluster.appRW()
        try rw.exec("DROP TABLE IF EXISTS rt_unreadable; CREATE TABLE rt_unreadable(v int); REVOKE ALL ON rt_unreadable FROM app_ro")
        rw.finish()
        try cluster.waitForReplica()
        let proxy = try startProxy(settings: ["read_your_writes = lsn"])
        let conn = try proxy.connect()
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port() FROM rt_unreadable WHERE v IS NULL OR v::text <> 'first'"),
                       [["0", primary]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]], "the next read goes to the replica at once")
        // Main would refuse it again: learnt, the same read with another value is not asked of main.
        let m = marker("learnt")
        let r0 = cluster.logOffset(.replica)
        let p0 = cluster.logOffset(.primary)
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port() FROM rt_unreadable WHERE v IS NULL OR v::text <> '\(m)'"),
                       [["0", primary]])
        waitUntil("the statement in the primary's log") { !cluster.loggedStatements(.primary, containing: m, since: p0).isEmpty }
        XCTAssertEqual(cluster.loggedStatements(.replica, containing: m, since: r0), [], "not asked of the replica")

        // The same read first in a read-only transaction (psycopg's read_only, asyncpg's readonly=True):
        // main's transaction is rolled back, and the whole transaction runs on the primary, read-only.
        try conn.exec("BEGIN READ ONLY")
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port(), current_setting('transaction_read_only') FROM rt_unreadable"),
                       [["0", primary, "on"]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[primary]], "the transaction stays where it started")
        XCTAssertThrowsError(try conn.exec("INSERT INTO rt_unreadable VALUES (1)"), "still read-only")
        try conn.exec("ROLLBACK")
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
        let replicaSuperuser = try cluster.superuser(.replica)
        defer { replicaSuperuser.finish() }
        XCTAssertEqual(try replicaSuperuser.query("SELECT count(*) FROM pg_stat_activity WHERE usename = 'app_ro' AND state LIKE 'idle in transaction%'"),
                       [["0"]], "main's transaction was rolled back")
    }

    func testReadWriteTransactionRunsEntirelyOnPrimary() throws {
        let m = marker("tx")
        try conn.exec("BEGIN")
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[primary, "f"]])
        XCTAssertEqual(try conn.query("INSERT INTO rt_items(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        // The transaction sees its own write: it is one snapshot on one backend.
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port() FROM rt_items WHERE v = '\(m)'"), [["1", primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["0"]], "not committed yet")
        try conn.exec("COMMIT")
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["1"]])
        XCTAssertEqual(conn.transactionStatus, "I")
    }

    func testRolledBackTransactionLeavesNothing() throws {
        let m = marker("rb")
        try conn.exec("BEGIN")
        XCTAssertEqual(try conn.query("INSERT INTO rt_items(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        try conn.exec("ROLLBACK")
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["0"]])
    }

    func testReadOnlyTransactionRunsOnReplica() throws {
        try conn.exec("BEGIN READ ONLY")
        XCTAssertEqual(try conn.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[replica, "t"]])
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port() FROM rt_items WHERE v = 'seed'"), [["1", replica]])
        try conn.exec("COMMIT")
        XCTAssertEqual(conn.transactionStatus, "I")
    }

    func testExtendedProtocolRead() throws {
        XCTAssertEqual(try conn.queryParams("SELECT inet_server_port(), $1::text", ["p"]), [[replica, "p"]])
    }

    func testExtendedProtocolWrite() throws {
        let m = marker("xp")
        XCTAssertEqual(try conn.queryParams("INSERT INTO rt_items(v) VALUES ($1) RETURNING inet_server_port()", [m]),
                       [[primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["1"]])
    }

    func testPreparedRead() throws {
        try conn.prepare(name: "rt_read", sql: "SELECT inet_server_port(), pg_is_in_recovery(), $1::int + 1", parameterCount: 1)
        XCTAssertEqual(try conn.execPrepared(name: "rt_read", params: ["41"]), [[replica, "t", "42"]])
        XCTAssertEqual(try conn.execPrepared(name: "rt_read", params: ["1"]), [[replica, "t", "2"]])
    }

    func testPreparedWrite() throws {
        let m = marker("pw")
        try conn.prepare(name: "rt_write", sql: "INSERT INTO rt_items(v) VALUES ($1) RETURNING inet_server_port()", parameterCount: 1)
        XCTAssertEqual(try conn.execPrepared(name: "rt_write", params: [m]), [[primary]])
        XCTAssertEqual(try conn.execPrepared(name: "rt_write", params: [m]), [[primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["2"]])
    }

    func testReadsAndWritesInterleaveOnOneConnection() throws {
        let m = marker("mix")
        for i in 0..<5 {
            XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]])
            XCTAssertEqual(try conn.query("INSERT INTO rt_items(v) VALUES ('\(m)-\(i)') RETURNING inet_server_port()"), [[primary]])
        }
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v LIKE '\(m)-%'"), [["5"]])
    }

    /// A statement repeated with other values in it (pgbench's simple mode, psycopg2) is routed as its
    /// text says every time; a change outside the values is routed afresh.
    func testStatementsRepeatedWithOtherValuesRouteByTheirText() throws {
        let m = marker("lit")
        for n in 1...4 {
            XCTAssertEqual(try conn.query("SELECT inet_server_port(), \(n * 7) FROM rt_items WHERE v = 'seed' AND id > -\(n)"),
                           [[replica, "\(n * 7)"]])
            XCTAssertEqual(try conn.query("SELECT inet_server_port(), \(n * 7) FROM rt_items WHERE v = 'seed' AND id > -\(n) FOR UPDATE"),
                           [[primary, "\(n * 7)"]])
            XCTAssertEqual(try conn.query("INSERT INTO rt_items(v) VALUES ('\(m)-\(n)') RETURNING inet_server_port()"), [[primary]])
        }
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v LIKE '\(m)-%'"), [["4"]])
    }

    /// asyncpg's pool sends this at every release; a session that holds no lock and listens to nothing
    /// has nothing to undo on the primary, so it runs on the replica (and works while the primary is down).
    /// ROLLBACK with no transaction open (pools roll back what they get back) only warns there too.
    func testPoolResetAndIdleRollbackRunOnTheReplica() throws {
        let m = marker("reset")
        let p0 = cluster.logOffset(.primary)
        let r0 = cluster.logOffset(.replica)
        try conn.exec("SELECT pg_advisory_unlock_all(), '\(m)';\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;")
        try conn.exec("ROLLBACK; SELECT '\(m)-rollback'")
        waitUntil("the reset and the rollback in the replica's log") {
            !cluster.loggedStatements(.replica, containing: m, since: r0).isEmpty
                && !cluster.loggedStatements(.replica, containing: "\(m)-rollback", since: r0).isEmpty
        }
        XCTAssertEqual(cluster.loggedStatements(.primary, containing: m, since: p0), [])
        // A session that took a lock is pinned to the primary, and releases it there.
        XCTAssertEqual(try conn.query("SELECT pg_advisory_lock(4711), inet_server_port()"), [["", primary]])
        XCTAssertEqual(try conn.query("SELECT pg_advisory_unlock_all(), inet_server_port()"), [["", primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4711"), [["0"]])
    }

    /// A standby cannot read an unlogged table ("cannot access temporary or unlogged relations during
    /// recovery"): reads of one run on the primary — one made through the proxy at once, one made behind
    /// its back once the replica's refusal has made the proxy look again.
    func testUnloggedTablesAreReadOnThePrimary() throws {
        try conn.exec("DROP TABLE IF EXISTS rt_unlogged; CREATE UNLOGGED TABLE rt_unlogged (id int)")
        try conn.exec("INSERT INTO rt_unlogged VALUES (1), (2)")
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port() FROM rt_unlogged"), [["2", primary]])
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port() FROM rt_unlogged WHERE id > 1"), [["1", primary]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port() FROM rt_items LIMIT 1"), [[replica]], "other reads stay on the replica")
        // A read-only transaction that starts with one runs on the primary, read-only.
        try conn.exec("BEGIN READ ONLY")
        XCTAssertEqual(try conn.query("SELECT count(*), inet_server_port(), current_setting('transaction_read_only') FROM rt_unlogged"),
                       [["2", primary, "on"]])
        try conn.exec("COMMIT")
        try conn.exec("BEGIN READ ONLY")
        XCTAssertEqual(try conn.query("SHOW transaction_read_only"), [["on"]])
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]], "a SHOW first keeps the transaction on the replica")
        try conn.exec("COMMIT")

        // A name no earlier run used: the proxy's catalog, read at its start, must not know it yet.
        let direct = "rt_unlogged_\(UInt32.random(in: 1...UInt32.max))"
        let rw = try cluster.appRW()
        try rw.exec("CREATE UNLOGGED TABLE \(direct) (id int); INSERT INTO \(direct) VALUES (7); GRANT SELECT ON \(direct) TO app_ro")
        try cluster.waitForReplica()
        // The replica refuses it; the proxy asks the primary instead, and looks at the catalog again.
        XCTAssertEqual(try conn.query("SELECT id, inet_server_port() FROM \(direct)"), [["7", primary]])
        waitUntil("reads of the table made behind the proxy's back run on the primary") {
            (try? conn.query("SELECT id, inet_server_port() FROM \(direct)")) == [["7", primary]]
        }
        try rw.exec("DROP TABLE \(direct)")
        rw.finish()
        // Dropped and made again logged: main can read it, and reads go back there.
        try conn.exec("DROP TABLE rt_unlogged")
        try conn.exec("CREATE TABLE rt_unlogged (id int)")
        try cluster.waitForReplica()
        waitUntil("reads of the logged table run on the replica") {
            (try? conn.query("SELECT count(*), inet_server_port() FROM rt_unlogged")) == [["0", replica]]
        }
    }

    /// EXPLAIN of a write runs nothing, but its plan needs the write's privileges, which main's
    /// read-only user lacks: it is planned on the primary.
    func testExplainOfAWriteIsPlannedOnThePrimary() throws {
        let m = marker("explain")
        let plan = try conn.query("EXPLAIN UPDATE rt_items SET v = '\(m)' WHERE v = 'seed'")
        XCTAssertTrue(plan.first?.first??.contains("Update on rt_items") ?? false, "\(plan)")
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM rt_items WHERE v = '\(m)'"), [["0"]], "nothing ran")
        XCTAssertEqual(try conn.query("SELECT inet_server_port()"), [[replica]], "reads after it stay on the replica")
    }

    func testStatementLogsShowWhereStatementsRan() throws {
        let m = marker("log")
        let p0 = cluster.logOffset(.primary)
        let r0 = cluster.logOffset(.replica)
        try conn.exec("SELECT '\(m)-read'")
        try conn.exec("INSERT INTO rt_items(v) VALUES ('\(m)-write')")
        waitUntil("statements in the logs") {
            !cluster.loggedStatements(.replica, containing: "\(m)-read", since: r0).isEmpty
                && !cluster.loggedStatements(.primary, containing: "\(m)-write", since: p0).isEmpty
        }
        XCTAssertEqual(cluster.loggedStatements(.primary, containing: "\(m)-read", since: p0), [])
        XCTAssertEqual(cluster.loggedStatements(.replica, containing: "\(m)-write", since: r0), [])
    }
}
