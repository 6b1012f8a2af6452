import Foundation
import XCTest

/// Read-your-writes, main lost and max_replica_lag, on a primary + replica pair of this class's own
/// (its replica is stopped and its replay paused, which the shared pair must never see).
final class OperationsReplicaTests: ProxyTestCase {
    nonisolated(unsafe) private static var pair: Result<OwnPair, Error>?

    override class func setUp() {
        super.setUp()
        pair = Result { try OwnPair(folder: "var/test-ops", primaryPort: 25452, replicaPort: 25453) }
    }

    override class func tearDown() {
        if case .success(let p)? = pair { p.stop() }
        pair = nil
        super.tearDown()
    }

    private var own: OwnPair!

    override func setUpWithError() throws {
        try super.setUpWithError()
        own = try XCTUnwrap(Self.pair, "the pair was not started").get()
        cluster = own.cluster
        // An earlier test may have left the replica stopped or paused (after a failure).
        try own.start()
        try own.setReplayPaused(false)
    }

    override func tearDown() {
        super.tearDown()
        if let own {
            if !own.replicaIsUp { try? own.start() }
            try? own.setReplayPaused(false)
        }
    }

    private let fastHealth = "health_check_period = 100ms"

    /// Sets (nil: resets) the primary's wal_writer_delay, which decides how long an asynchronous
    /// commit's WAL may stay unwritten.
    private func setWALWriterDelay(_ value: String?) throws {
        let c = try cluster.superuser(.primary)
        defer { c.finish() }
        try c.exec(value.map { "ALTER SYSTEM SET wal_writer_delay = '\($0)'" } ?? "ALTER SYSTEM RESET wal_writer_delay")
        try c.exec("SELECT pg_reload_conf()")
        let want = value ?? "200ms"
        try waitUntil("wal_writer_delay = \(want)") { try c.scalar("SHOW wal_writer_delay") == want }
    }

    private func onReplica(_ sql: String) throws -> [[String?]] {
        let c = try cluster.superuser(.replica)
        defer { c.finish() }
        return try c.query(sql)
    }

    // MARK: read-your-writes

    /// With replay paused, a session's own write is read back from the primary; another session
    /// reads the replica and does not see it; after replay resumes, the writer's reads return to main.
    ///
    /// The servers commit asynchronously (synchronous_commit = off) and the WAL writer is slowed
    /// down here, so the commit stays unwritten while the monitor polls: a target taken from the
    /// primary's write position (which the paused replica has already replayed) would let the
    /// writer's reads back onto the replica, without its row.
    func testReadYourWritesReadsFromThePrimaryUntilMainReplayed() throws {
        try makeTable("ops_ryw")
        let proxy = try startProxy(settings: [fastHealth, "read_your_writes = lsn"])
        let writer = try proxy.connect(user: "alice")
        let other = try proxy.connect(user: "bob")
        XCTAssertEqual(try writer.query("SELECT inet_server_port()"), [[replica]])
        XCTAssertEqual(try other.query("SELECT inet_server_port()"), [[replica]])
        XCTAssertEqual(try onPrimary("SHOW synchronous_commit"), [["off"]])
        try setWALWriterDelay("10s")
        defer { try? setWALWriterDelay(nil) }

        try own.setReplayPaused(true)
        let m = marker("ryw")
        let probe = "SELECT inet_server_port(), count(*) FROM ops_ryw WHERE v = '\(m)'"
        XCTAssertEqual(try writer.query("INSERT INTO ops_ryw(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        let written = try onPrimary("SELECT pg_current_wal_lsn() < pg_current_wal_insert_lsn()")
        XCTAssertEqual(try writer.query(probe), [[primary, "1"]], "the writer reads its own write, from the primary")
        XCTAssertEqual(try other.query(probe), [[replica, "0"]], "another session reads the replica, which lacks the row")
        XCTAssertEqual(try onReplica("SELECT count(*) FROM ops_ryw WHERE v = '\(m)'"), [["0"]], "replay is really paused")
        // Through a second of health polls (every 100 ms), every read of the writer's finds its row.
        let pollsEnd = Date().addingTimeInterval(1)
        var reads = 0
        while Date() < pollsEnd {
            XCTAssertEqual(try writer.query(probe), [[primary, "1"]], "still from the primary while replay is paused (read \(reads))")
            reads += 1
            Thread.sleep(forTimeInterval: 0.05)
        }
        print("read-your-writes: \(reads) reads while paused; the commit's WAL was unwritten after it returned: \(written)")

        let console = try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
        let waiting = try console.run("SHOW SESSIONS").records.first { $0["user"] == "alice" }?["waiting_for_replay"] ?? nil
        print("read-your-writes: SHOW SESSIONS waiting_for_replay for the writer while paused: \(waiting ?? "nil")")

        try setWALWriterDelay(nil)
        let resumedAt = Date()
        try own.setReplayPaused(false)
        waitUntil("the writer's reads return to the replica") { (try? writer.query(probe)) == [[replica, "1"]] }
        print("read-your-writes: the writer's reads were back on the replica \(millis(since: resumedAt)) ms after replay resumed")
        XCTAssertEqual(try other.query(probe), [[replica, "1"]])
    }

    /// A read-only transaction is a read too: after the session's write, while replay is paused, it
    /// runs on the primary and sees the row (psycopg's `read_only`, asyncpg's `readonly=True` and
    /// SQLAlchemy's `postgresql_readonly` open exactly these); once main has replayed, on the replica.
    func testReadOnlyTransactionsSeeTheSessionsOwnWrites() throws {
        try makeTable("ops_ryw_ro")
        let proxy = try startProxy(settings: [fastHealth, "read_your_writes = lsn"])
        let writer = try proxy.connect(user: "alice")
        XCTAssertEqual(try writer.query("SELECT inet_server_port()"), [[replica]])
        try own.setReplayPaused(true)
        let m = marker("ro")
        XCTAssertEqual(try writer.query("INSERT INTO ops_ryw_ro(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        let probe = "SELECT inet_server_port(), count(*), current_setting('transaction_read_only') FROM ops_ryw_ro WHERE v = '\(m)'"
        for begin in [["BEGIN READ ONLY"], ["BEGIN", "SET TRANSACTION READ ONLY"],
                      ["START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"]] {
            for statement in begin { try writer.exec(statement) }
            XCTAssertEqual(try writer.query(probe), [[primary, "1", "on"]], "\(begin): read-only, on the primary, with the row")
            try writer.exec("COMMIT")
        }
        XCTAssertEqual(try onReplica("SELECT count(*) FROM ops_ryw_ro WHERE v = '\(m)'"), [["0"]], "replay is really paused")
        try own.setReplayPaused(false)
        waitUntil("read-only transactions return to the replica") {
            guard (try? writer.exec("BEGIN READ ONLY")) != nil else { return false }
            defer { _ = try? writer.exec("COMMIT") }
            return (try? writer.query(probe)) == [[replica, "1", "on"]]
        }
    }

    /// read_your_writes = off: the writer's next read goes to the replica and misses its own row.
    func testReadYourWritesOffReadsTheReplicaAndMissesTheRow() throws {
        try makeTable("ops_ryw_off")
        let proxy = try startProxy(settings: [fastHealth, "read_your_writes = off"])
        let writer = try proxy.connect(user: "alice")
        XCTAssertEqual(try writer.query("SELECT inet_server_port()"), [[replica]])
        try own.setReplayPaused(true)
        let m = marker("off")
        XCTAssertEqual(try writer.query("INSERT INTO ops_ryw_off(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try writer.query("SELECT inet_server_port(), count(*) FROM ops_ryw_off WHERE v = '\(m)'"),
                       [[replica, "0"]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM ops_ryw_off WHERE v = '\(m)'"), [["1"]])
        try own.setReplayPaused(false)
        waitUntil("the replica replays the row") {
            (try? writer.query("SELECT inet_server_port(), count(*) FROM ops_ryw_off WHERE v = '\(m)'")) == [[replica, "1"]]
        }
    }

    // MARK: main lost

    /// The replica stops under a connected client: its reads go to the primary (read_fallback =
    /// writeable), writes keep working; when the replica is back, reads return to it.
    func testMainLostReadsFallBackToWriteableAndReturn() throws {
        try makeTable("ops_lost")
        let proxy = try startProxy(settings: [fastHealth, "read_fallback = writeable"])
        let client = try proxy.connect(user: "alice")
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]])

        try own.stopReplica()
        let downAt = Date()
        var errors: [String] = []
        waitUntil("reads fall back to the primary") {
            do {
                return try client.query("SELECT inet_server_port()") == [[primary]]
            } catch {
                errors.append((error as? PQError)?.sqlState ?? "\(error)")
                return !client.isOK  // the client was closed: stop polling, fail below
            }
        }
        print("main lost: reads on the primary \(millis(since: downAt)) ms after the replica stopped; "
              + "\(errors.count) reads failed first (SQLSTATEs \(errors))")
        XCTAssertTrue(client.isOK, "the client stays connected while main is down; errors: \(errors)")
        XCTAssertEqual(try client.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[primary, "f"]])
        let m = marker("lost")
        XCTAssertEqual(try client.query("INSERT INTO ops_lost(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try client.query("SELECT inet_server_port(), count(*) FROM ops_lost WHERE v = '\(m)'"), [[primary, "1"]])

        let console = try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
        try waitUntil("SHOW BACKENDS says main is down") {
            try console.run("SHOW BACKENDS").records.contains { $0["role"] == "main" && $0["state"] != "up" }
        }

        let upAt = Date()
        try own.start()
        let started = millis(since: upAt)
        waitUntil("reads return to the replica", timeout: 60) {
            (try? client.query("SELECT inet_server_port()")) == [[replica]]
        }
        print("main back: reads on the replica \(millis(since: upAt)) ms after the replica start began "
              + "(the start itself took \(started) ms)")
        XCTAssertEqual(try client.query("SELECT count(*) FROM ops_lost WHERE v = '\(m)'"), [["1"]])
    }

    /// A reload starts a new health monitor: a session that was connected before it follows the new
    /// one, so it still falls back when main goes down afterwards.
    func testSessionFromBeforeAReloadStillFallsBackWhenMainIsLost() throws {
        let proxy = try startProxy(settings: [fastHealth, "read_fallback = writeable"])
        let client = try proxy.connect(user: "alice")
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]])
        let reloadsBefore = proxy.stderr.components(separatedBy: "configuration reloaded").count
        kill(proxy.pid, SIGHUP)
        waitUntil("the reload is applied") { proxy.stderr.components(separatedBy: "configuration reloaded").count > reloadsBefore }
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]])

        try own.stopReplica()
        waitUntil("reads fall back to the primary") {
            (try? client.query("SELECT inet_server_port()")) == [[primary]] || !client.isOK
        }
        XCTAssertTrue(client.isOK, "the client stays connected while main is down")
        XCTAssertEqual(try client.query("SELECT inet_server_port(), pg_is_in_recovery()"), [[primary, "f"]])
        try own.start()
        waitUntil("reads return to the replica", timeout: 60) {
            (try? client.query("SELECT inet_server_port()")) == [[replica]]
        }
    }

    /// A client that connects while main is down can still read (from writeable) and write.
    func testNewClientWhileMainIsDownUsesWriteable() throws {
        try makeTable("ops_lost_new")
        let proxy = try startProxy(settings: [fastHealth, "read_fallback = writeable"])
        XCTAssertEqual(try proxy.connect().query("SELECT inet_server_port()"), [[replica]])
        try own.stopReplica()
        let console = try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
        try waitUntil("the monitor sees main down") {
            try console.run("SHOW BACKENDS").records.contains { $0["role"] == "main" && $0["state"] != "up" }
        }
        do {
            let late = try proxy.connect(user: "carol")
            XCTAssertEqual(try late.query("SELECT inet_server_port()"), [[primary]])
            let m = marker("late")
            XCTAssertEqual(try late.query("INSERT INTO ops_lost_new(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        } catch {
            XCTFail("a client cannot log in while main is down although read_fallback = writeable: \(error)")
        }
    }

    /// read_fallback = error: with main down, reads fail with 08006 and writes keep working.
    func testMainLostWithReadFallbackErrorRefusesReads() throws {
        try makeTable("ops_lost_err")
        let proxy = try startProxy(settings: [fastHealth, "read_fallback = error"])
        let client = try proxy.connect(user: "alice")
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[replica]])

        try own.stopReplica()
        let downAt = Date()
        var others: [String] = []
        waitUntil("reads are refused with 08006") {
            do {
                _ = try client.query("SELECT inet_server_port()")
                others.append("a result")
                return false
            } catch let e as PQError {
                if e.sqlState == "08006" { return true }
                others.append(e.sqlState ?? e.message)
                return !client.isOK
            } catch {
                return false
            }
        }
        print("read_fallback = error: reads refused with 08006 \(millis(since: downAt)) ms after the replica stopped; "
              + "before that: \(others)")
        XCTAssertTrue(client.isOK, "the client stays connected")
        XCTAssertThrowsError(try client.query("SELECT 1")) { XCTAssertEqual(($0 as? PQError)?.sqlState, "08006", "\($0)") }
        XCTAssertEqual(client.transactionStatus, "I")
        let m = marker("err")
        XCTAssertEqual(try client.query("INSERT INTO ops_lost_err(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        XCTAssertEqual(try onPrimary("SELECT count(*) FROM ops_lost_err WHERE v = '\(m)'"), [["1"]])
        // A read-write transaction runs on writeable as a whole, reads included.
        try client.exec("BEGIN")
        XCTAssertEqual(try client.query("SELECT inet_server_port()"), [[primary]])
        try client.exec("COMMIT")

        let upAt = Date()
        try own.start()
        waitUntil("reads return to the replica", timeout: 60) { (try? client.query("SELECT inet_server_port()")) == [[replica]] }
        print("read_fallback = error: reads answered by the replica again \(millis(since: upAt)) ms after its start began")
    }

    // MARK: max_replica_lag

    /// With replay paused and a write, once main's replay delay passes max_replica_lag, other
    /// sessions' reads go to the primary too; after resume they return to main.
    func testMaxReplicaLagSendsOtherSessionsReadsToThePrimary() throws {
        try makeTable("ops_lag")
        let proxy = try startProxy(settings: [fastHealth, "max_replica_lag = 1s"])
        let writer = try proxy.connect(user: "alice")
        let other = try proxy.connect(user: "bob")
        XCTAssertEqual(try other.query("SELECT inet_server_port()"), [[replica]])

        try own.setReplayPaused(true)
        let m = marker("lag")
        XCTAssertEqual(try writer.query("INSERT INTO ops_lag(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        let wroteAt = Date()
        var replicaReads = 0
        waitUntil("other sessions' reads go to the primary") {
            guard let port = try? other.query("SELECT inet_server_port()") else { return false }
            if port == [[replica]] { replicaReads += 1 }
            return port == [[primary]]
        }
        print("max_replica_lag = 1s: other sessions' reads on the primary \(millis(since: wroteAt)) ms after the write "
              + "(\(replicaReads) reads were still served by the replica first)")
        // The replica itself confirms it is behind by more than the limit.
        let delay = try onReplica("""
            SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 > 1,
                   pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()
            """)
        XCTAssertEqual(delay, [["t", "t"]])
        XCTAssertEqual(try other.query("SELECT inet_server_port(), count(*) FROM ops_lag WHERE v = '\(m)'"), [[primary, "1"]])
        let newcomer = try proxy.connect(user: "carol")
        XCTAssertEqual(try newcomer.query("SELECT inet_server_port()"), [[primary]], "a new session reads the primary too")
        let console = try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
        let lag = try console.run("SHOW BACKENDS").records.first { $0["role"] == "main" }
        print("max_replica_lag: SHOW BACKENDS main while paused: lag_seconds \((lag?["lag_seconds"] ?? nil) ?? "nil"), "
              + "lag_bytes \((lag?["lag_bytes"] ?? nil) ?? "nil")")

        let resumedAt = Date()
        try own.setReplayPaused(false)
        waitUntil("reads return to the replica") { (try? other.query("SELECT inet_server_port()")) == [[replica]] }
        print("max_replica_lag: reads back on the replica \(millis(since: resumedAt)) ms after replay resumed")
        XCTAssertEqual(try other.query("SELECT inet_server_port(), count(*) FROM ops_lag WHERE v = '\(m)'"), [[replica, "1"]])
        XCTAssertEqual(try newcomer.query("SELECT inet_server_port()"), [[replica]])
    }

    /// The same right after the replica restarted (the monitor's connection to it was cut, and the
    /// standby may not have replayed a transaction since its start): its delay is still seen.
    func testMaxReplicaLagSeenOnAFreshlyRestartedReplica() throws {
        try makeTable("ops_lag_restart")
        let proxy = try startProxy(settings: [fastHealth, "max_replica_lag = 1s"])
        let writer = try proxy.connect(user: "alice")
        let other = try proxy.connect(user: "bob")
        try own.stopReplica()
        try own.start()
        try own.setReplayPaused(true)
        let before = try onReplica("SELECT pg_last_xact_replay_timestamp() IS NULL")
        let m = marker("lagr")
        XCTAssertEqual(try writer.query("INSERT INTO ops_lag_restart(v) VALUES ('\(m)') RETURNING inet_server_port()"), [[primary]])
        let wroteAt = Date()
        // The replica has received the write but not replayed it, for longer than the limit.
        waitUntil("the replica has received the write") {
            (try? onReplica("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn()")) == [["t"]]
        }
        XCTAssertEqual(try onReplica("SELECT count(*) FROM ops_lag_restart WHERE v = '\(m)'"), [["0"]])
        waitUntil("other sessions' reads go to the primary", timeout: 15) {
            (try? other.query("SELECT inet_server_port()")) == [[primary]]
        }
        let console = try OpsClient(proxy.conninfo(user: "admin", dbname: "pgsplit"))
        let lag = try console.run("SHOW BACKENDS").records.first { $0["role"] == "main" }
        print("max_replica_lag after a replica restart (replay timestamp NULL at pause: \(before.first?.first ?? nil ?? "?")): "
              + "\(millis(since: wroteAt)) ms after the write; SHOW BACKENDS main lag_seconds "
              + "\((lag?["lag_seconds"] ?? nil) ?? "nil"), lag_bytes \((lag?["lag_bytes"] ?? nil) ?? "nil")")
        try own.setReplayPaused(false)
        waitUntil("reads return to the replica") { (try? other.query("SELECT inet_server_port()")) == [[replica]] }
    }
}
