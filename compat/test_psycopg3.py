"""psycopg 3 through pgsplit."""

import psycopg
import pytest
from psycopg import sql

from conftest import (PRIMARY_PORT, REPLICA_PORT, direct_primary, drop_table, primary_scalar, proxy_dsn,
                      unique, wait_replay)


def connect(**kw) -> psycopg.Connection:
    kw.setdefault("connect_timeout", 10)
    return psycopg.connect(proxy_dsn(), **kw)


@pytest.fixture
def table():
    t = unique("compat_pg3")
    with connect(autocommit=True) as c:
        c.execute(f"CREATE TABLE {t} (id int primary key, v text)")
    wait_replay()
    yield t
    drop_table(t)


def test_autocommit_reads_on_replica():
    with connect(autocommit=True) as c:
        for _ in range(3):
            assert c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone() == (REPLICA_PORT, True)
        assert c.execute("SELECT %s::int + 1, inet_server_port()", (41,)).fetchone() == (42, REPLICA_PORT)


def test_read_write_target_session_attrs_connects():
    # libpq's target_session_attrs=read-write (and pgx's, which asks SHOW transaction_read_only): a
    # pgsplit session can write, so it qualifies — and its reads still go to the replica.
    with connect(autocommit=True, target_session_attrs="read-write") as c:
        assert c.execute("SHOW transaction_read_only").fetchone()[0] == "off"
        assert c.execute("SHOW in_hot_standby").fetchone()[0] == "off"
        assert c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone() == (REPLICA_PORT, True)


def test_transaction_on_primary(table):
    with connect() as c:  # autocommit off: psycopg opens BEGIN itself
        c.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        port, n = c.execute(f"SELECT inet_server_port(), count(*) FROM {table}").fetchone()
        assert (port, n) == (PRIMARY_PORT, 1)
        # Not yet visible outside the transaction.
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 0
        c.commit()
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 1
        c.execute(f"INSERT INTO {table} VALUES (2, 'b')")
        c.rollback()
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 1


def test_read_only_transactions_on_replica(table):
    with connect() as c:
        c.read_only = True
        port, rec = c.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
        assert (port, rec) == (REPLICA_PORT, True)
        assert c.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
        assert c.execute("SHOW transaction_read_only").fetchone()[0] == "on"
        c.commit()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute(f"INSERT INTO {table} VALUES (1, 'x')")
        c.rollback()
        # Back to read-write: the next transaction is on the primary.
        c.read_only = False
        assert c.execute("SELECT inet_server_port()").fetchone()[0] == PRIMARY_PORT
        c.commit()


def test_prepared_statements_prepare_true(table):
    with connect(autocommit=True) as c:
        for i in range(1, 8):
            assert c.execute(f"INSERT INTO {table} VALUES (%s, %s) RETURNING inet_server_port()",
                             (i, f"v{i}"), prepare=True).fetchone()[0] == PRIMARY_PORT
        wait_replay()
        for i in range(1, 8):
            assert c.execute(f"SELECT v, inet_server_port() FROM {table} WHERE id = %s", (i,),
                             prepare=True).fetchone() == (f"v{i}", REPLICA_PORT)
        # The statements really were prepared on the server (psycopg names them _pg3_N).
        assert c.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '\\_pg3\\_%%'",
                         prepare=True).fetchone()[0] >= 2
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 7


def test_prepare_threshold_zero(table):
    with connect(autocommit=True, prepare_threshold=0) as c:
        for i in range(1, 11):
            assert c.execute(f"INSERT INTO {table} VALUES (%s, 'x') RETURNING id, inet_server_port()",
                             (i,)).fetchone() == (i, PRIMARY_PORT)
            # A read between writes, prepared as well.
            assert c.execute("SELECT %s::int * 2, inet_server_port()", (i,)).fetchone() == (2 * i, REPLICA_PORT)
        # Both kinds stayed prepared on their backends and are reused (no "does not exist").
        for i in range(3):
            assert c.execute("SELECT %s::int * 2, inet_server_port()", (i,)).fetchone() == (2 * i, REPLICA_PORT)
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 10


def test_pipeline_mixed_reads_and_writes_in_order(table):
    with connect(autocommit=True) as c:
        with c.pipeline() as p:
            curs = []
            for i in range(1, 6):
                curs.append(("w", i, c.execute(f"INSERT INTO {table} VALUES (%s, %s) RETURNING id, inet_server_port()",
                                               (i, f"p{i}"))))
                curs.append(("r", i, c.execute("SELECT %s::int + 1000, inet_server_port()", (i,))))
            p.sync()
            curs.append(("c", 0, c.execute(f"SELECT count(*) FROM {table}")))
        for kind, i, cur in curs:
            row = cur.fetchone()
            if kind == "w":
                assert row == (i, PRIMARY_PORT)
            elif kind == "r":
                assert row[0] == i + 1000
    assert primary_scalar(f"SELECT string_agg(v, ',' ORDER BY id) FROM {table}") == "p1,p2,p3,p4,p5"


def test_pipeline_write_after_a_read_fetched_midway(table):
    # Fetching inside a pipeline flushes the read to main with no Sync yet; the write after it must
    # still reach the primary (main refused it as read-only before).
    with connect(autocommit=True) as c:
        with c.pipeline():
            cur = c.execute(f"SELECT count(*), inet_server_port() FROM {table}")
            assert cur.fetchone() == (0, REPLICA_PORT)
            c.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        # psycopg ends a pipeline with Sync and a bare Flush: the next write is not tied to main.
        c.execute(f"INSERT INTO {table} VALUES (2, 'b')")
        with c.pipeline():
            c.execute("SELECT 1")
            c.execute(f"INSERT INTO {table} VALUES (3, 'c')")
    assert primary_scalar(f"SELECT string_agg(v, ',' ORDER BY id) FROM {table}") == "a,b,c"


def test_pipeline_write_after_a_failed_flushed_read_does_not_run(table):
    # PostgreSQL skips the rest of a failed pipeline up to its Sync: the write must not run anywhere.
    with connect(autocommit=True) as c:
        with pytest.raises(psycopg.errors.PipelineAborted):
            with c.pipeline():
                cur = c.execute(f"SELECT 1 / 0 FROM {table}")
                with pytest.raises(psycopg.errors.DivisionByZero):
                    cur.fetchone()
                c.execute(f"INSERT INTO {table} VALUES (1, 'skipped')")
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 0
        with c.pipeline():
            c.execute(f"INSERT INTO {table} VALUES (2, 'after')")
    assert primary_scalar(f"SELECT string_agg(v, ',') FROM {table}") == "after"


def test_pipeline_in_transaction(table):
    with connect() as c:
        with c.pipeline():
            c.execute(f"INSERT INTO {table} VALUES (1, 'a')")
            cur = c.execute(f"SELECT count(*), inet_server_port() FROM {table}")
            c.execute(f"INSERT INTO {table} VALUES (2, 'b')")
            cur2 = c.execute(f"SELECT count(*) FROM {table}")
        assert cur.fetchone() == (1, PRIMARY_PORT)
        assert cur2.fetchone()[0] == 2
        c.commit()
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 2


def test_named_cursor_over_a_read():
    with connect() as c:
        c.read_only = True
        with c.cursor("compat_read_cur") as cur:
            cur.itersize = 100
            cur.execute("SELECT g, inet_server_port() FROM generate_series(1, 1000) g")
            rows = list(cur)
        assert len(rows) == 1000
        assert [r[0] for r in rows] == list(range(1, 1001))
        assert {r[1] for r in rows} == {REPLICA_PORT}
        c.commit()


def test_named_cursor_over_own_write_in_a_transaction(table):
    with connect() as c:
        c.execute(f"INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, 300) g")
        with c.cursor("compat_write_cur") as cur:
            cur.execute(f"SELECT id, v, inet_server_port() FROM {table} ORDER BY id")
            first = cur.fetchmany(10)
            rest = cur.fetchall()
        rows = first + rest
        assert [r[0] for r in rows] == list(range(1, 301))
        assert {r[2] for r in rows} == {PRIMARY_PORT}
        c.commit()
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 300


def test_copy_from_stdin_text_and_binary(table):
    with connect(autocommit=True) as c:
        with c.cursor() as cur:
            with cur.copy(f"COPY {table} (id, v) FROM STDIN") as copy:
                for i in range(1, 101):
                    copy.write_row((i, f"t{i}"))
            assert cur.rowcount == 100
            with cur.copy(f"COPY {table} (id, v) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text"])
                for i in range(101, 201):
                    copy.write_row((i, f"b{i}"))
            assert cur.rowcount == 100
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 200
    assert primary_scalar(f"SELECT v FROM {table} WHERE id = 150") == "b150"
    assert primary_scalar(f"SELECT v FROM {table} WHERE id = 50") == "t50"


def test_copy_to_stdout_text_and_binary(table):
    with direct_primary() as p:
        p.execute(f"INSERT INTO {table} SELECT g, 'c' || g FROM generate_series(1, 50) g")
    wait_replay()
    with connect(autocommit=True) as c:
        with c.cursor() as cur:
            with cur.copy(f"COPY (SELECT id, v, inet_server_port() FROM {table} ORDER BY id) TO STDOUT") as copy:
                rows = list(copy.rows())
            assert [r[0] for r in rows] == [str(i) for i in range(1, 51)]
            assert {r[2] for r in rows} == {str(REPLICA_PORT)}
            with cur.copy(f"COPY (SELECT id, v FROM {table} ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "text"])
                rows = list(copy.rows())
            assert rows == [(i, f"c{i}") for i in range(1, 51)]
            with cur.copy(f"COPY {table} TO STDOUT") as copy:
                data = b"".join(bytes(b) for b in copy)
            assert data.count(b"\n") == 50
        # The connection is fine afterwards.
        assert c.execute("SELECT 1").fetchone() == (1,)


def test_notice_is_forwarded():
    notices = []
    with connect(autocommit=True) as c:
        c.add_notice_handler(lambda d: notices.append(d.message_primary))
        c.execute("DO $$ BEGIN RAISE NOTICE 'compat notice from %', inet_server_port(); END $$")
        c.execute("SELECT 1")
    assert notices == [f"compat notice from {PRIMARY_PORT}"]


def test_listen_notify_reaches_an_idle_client():
    chan = unique("compat_chan")
    with connect(autocommit=True) as listener, connect(autocommit=True) as sender:
        listener.execute(f"LISTEN {chan}")
        sender.execute("SELECT pg_notify(%s, 'via-proxy')", (chan,))
        with direct_primary() as p:
            p.execute(sql.SQL("NOTIFY {}, 'direct'").format(sql.Identifier(chan)))
        got = []
        for n in listener.notifies(timeout=10, stop_after=2):
            got.append((n.channel, n.payload))
        assert got == [(chan, "via-proxy"), (chan, "direct")]
        assert listener.execute("SELECT 1").fetchone() == (1,)


def test_own_notifications_carry_the_sessions_process_id():
    # Clients skip their own notifications by comparing Notify.pid with their backend pid — which,
    # through pgsplit, is the proxy's: its own notifications must carry it; others keep theirs.
    chan = unique("compat_self")
    with connect(autocommit=True) as c, connect(autocommit=True) as other:
        c.execute(f"LISTEN {chan}")
        c.execute(f"NOTIFY {chan}, 'mine'")
        other.execute(f"NOTIFY {chan}, 'theirs'")
        got = [(n.payload, n.pid) for n in c.notifies(timeout=10, stop_after=2)]
        assert got[0] == ("mine", c.info.backend_pid)
        assert got[1][0] == "theirs" and got[1][1] != c.info.backend_pid


def test_pipeline_units_on_both_backends_stay_in_order(table):
    """Sync after each statement: reads are units for main, writes units for writeable, pipelined
    together; the answers must come back in the order sent."""
    with connect(autocommit=True) as c:
        with c.pipeline() as p:
            curs = []
            for i in range(1, 11):
                curs.append(("r", i, c.execute("SELECT %s::int, inet_server_port(), pg_sleep(0.01 * (%s %% 3))",
                                               (i, i))))
                p.sync()
                curs.append(("w", i, c.execute(f"INSERT INTO {table} VALUES (%s, 'q') RETURNING id, inet_server_port()",
                                               (i,))))
                p.sync()
        for kind, i, cur in curs:
            row = cur.fetchone()
            if kind == "r":
                assert row[:2] == (i, REPLICA_PORT)
            else:
                assert row == (i, PRIMARY_PORT)
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 10


def test_long_statement_names_like_pgx(table):
    # pgx names each prepared statement "stmtcache_" + a digest of its text (58 bytes), far more
    # statements than a session keeps in its quick list: each must run as itself on the replica, be
    # prepared on the primary under its exact name when a read-write transaction first uses it, and
    # be found again after others were deallocated.
    with direct_primary() as d:
        d.execute(f"INSERT INTO {table} VALUES (1, 'one')")
    wait_replay()
    with connect(autocommit=True) as c:
        pg = c.pgconn
        names = [f"stmtcache_{i:048x}".encode() for i in range(40)]

        def run(name: bytes) -> tuple:
            r = pg.exec_prepared(name, [])
            assert r.status == psycopg.pq.ExecStatus.TUPLES_OK, r.error_message
            return tuple(r.get_value(0, i).decode() for i in range(r.nfields))

        for i, name in enumerate(names):
            r = pg.prepare(name, f"SELECT {i}, inet_server_port(), (SELECT v FROM {table} WHERE id = 1)".encode())
            assert r.status == psycopg.pq.ExecStatus.COMMAND_OK, r.error_message
        for i, name in enumerate(names):
            assert run(name) == (str(i), str(REPLICA_PORT), "one")
        assert pg.exec_(b"BEGIN READ WRITE").status == psycopg.pq.ExecStatus.COMMAND_OK
        for i, name in enumerate(names[::-1]):
            assert run(name) == (str(len(names) - 1 - i), str(PRIMARY_PORT), "one")
        assert pg.exec_(b"COMMIT").status == psycopg.pq.ExecStatus.COMMAND_OK
        # Deallocated by name (SQL), then the rest still answer as themselves.
        for name in names[::3]:
            assert pg.exec_(b'DEALLOCATE "' + name + b'"').status == psycopg.pq.ExecStatus.COMMAND_OK
        for i, name in enumerate(names):
            r = pg.exec_prepared(name, [])
            if i % 3 == 0:
                assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000"
            else:
                assert r.status == psycopg.pq.ExecStatus.TUPLES_OK, r.error_message
                assert r.get_value(0, 0).decode() == str(i)


def test_refused_parse_keeps_the_first_statement():
    # A Parse of a name that exists fails (42P05) and PostgreSQL keeps the first statement: so must
    # the copy the proxy prepares on the primary when a read-write transaction uses the name.
    with connect(autocommit=True) as c:
        pg = c.pgconn
        assert pg.prepare(b"dup", b"SELECT 'first', inet_server_port()").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pg.prepare(b"dup", b"SELECT 'second', inet_server_port()")
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42P05"
        r = pg.exec_prepared(b"dup", [])
        assert (r.get_value(0, 0), int(r.get_value(0, 1))) == (b"first", REPLICA_PORT)
        assert pg.exec_(b"BEGIN READ WRITE").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pg.exec_prepared(b"dup", [])
        assert (r.get_value(0, 0), int(r.get_value(0, 1))) == (b"first", PRIMARY_PORT)
        assert pg.exec_(b"COMMIT").status == psycopg.pq.ExecStatus.COMMAND_OK
        # A Parse the server cannot carry out leaves no statement behind, anywhere.
        r = pg.prepare(b"broken", b"SELECT * FROM no_such_table_here")
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42P01"
        assert pg.exec_(b"BEGIN READ WRITE").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pg.exec_prepared(b"broken", [])
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000"
        assert pg.exec_(b"ROLLBACK").status == psycopg.pq.ExecStatus.COMMAND_OK


def test_sql_deallocate_of_a_protocol_statement():
    # asyncpg drops its statements with SQL DEALLOCATE; PostgreSQL keeps one namespace for both kinds,
    # so the statement is gone everywhere — the proxy must not prepare it on the primary again.
    with connect(autocommit=True) as c:
        pg = c.pgconn
        assert pg.prepare(b"__asyncpg_stmt_7__", b"SELECT 1").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert pg.exec_prepared(b"__asyncpg_stmt_7__", []).status == psycopg.pq.ExecStatus.TUPLES_OK
        assert pg.exec_(b"DEALLOCATE __asyncpg_stmt_7__").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pg.exec_prepared(b"__asyncpg_stmt_7__", [])
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000"
        assert pg.exec_(b"BEGIN READ WRITE").status == psycopg.pq.ExecStatus.COMMAND_OK
        r = pg.exec_prepared(b"__asyncpg_stmt_7__", [])
        assert r.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"26000"
        assert pg.exec_(b"ROLLBACK").status == psycopg.pq.ExecStatus.COMMAND_OK
        # The name can be prepared again, and runs as its new self on both servers.
        assert pg.prepare(b"__asyncpg_stmt_7__", b"SELECT 2").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert pg.exec_prepared(b"__asyncpg_stmt_7__", []).get_value(0, 0) == b"2"
        assert pg.exec_(b"BEGIN READ WRITE").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert pg.exec_prepared(b"__asyncpg_stmt_7__", []).get_value(0, 0) == b"2"
        assert pg.exec_(b"COMMIT").status == psycopg.pq.ExecStatus.COMMAND_OK


def test_reads_the_replica_refuses_are_answered_by_the_primary_extended():
    # The extended-protocol form (psycopg 3 sends a query with parameters as one batch): a view whose
    # function writes, and a table another connection created a moment ago.
    log, view = unique("compat_ref3l"), unique("compat_ref3v")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {log} (x int)")
        p.execute(f"CREATE FUNCTION {log}_f(n int) RETURNS int LANGUAGE plpgsql AS "
                  f"$$BEGIN INSERT INTO {log} VALUES (n); RETURN n; END$$")
        p.execute(f"CREATE VIEW {view} AS SELECT {log}_f(5) AS r")
        p.execute(f"GRANT SELECT ON {view}, {log} TO app_ro")
    wait_replay()
    try:
        with connect(autocommit=True) as c:
            for _ in range(3):
                assert c.execute(f"SELECT r + %s FROM {view}", (1,)).fetchone() == (6,)
            assert primary_scalar(f"SELECT count(*) FROM {log}") == 3, "each hidden write ran once"
            assert c.execute("SELECT inet_server_port()").fetchone()[0] == REPLICA_PORT
            fresh = unique("compat_ref3f")
            with connect(autocommit=True) as other:
                other.execute(f"CREATE TABLE {fresh} AS SELECT 1 AS x")
                assert c.execute(f"SELECT x + %s FROM {fresh}", (1,)).fetchone() == (2,)
                other.execute(f"DROP TABLE {fresh}")
    finally:
        with direct_primary() as p:
            p.execute(f"DROP VIEW {view}; DROP FUNCTION {log}_f(int); DROP TABLE {log}")


def test_read_only_transaction_over_what_the_replica_refuses():
    # conn.read_only: psycopg sends BEGIN READ ONLY, then the query as one batch. A table the replica's
    # user may not read, and an unlogged table: the transaction runs on the primary, still read-only.
    secret, ul = unique("compat_ro3s"), unique("compat_ro3u")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {secret} (x int)")
        p.execute(f"INSERT INTO {secret} VALUES (3)")
        p.execute(f"REVOKE ALL ON {secret} FROM app_ro")
        p.execute(f"CREATE UNLOGGED TABLE {ul} (x int)")
        p.execute(f"INSERT INTO {ul} VALUES (4)")
        p.execute(f"GRANT SELECT ON {ul} TO app_ro")
    wait_replay()
    try:
        with connect() as c:
            c.read_only = True
            for table, value in ((secret, 3), (ul, 4)):
                with c.transaction():
                    row = c.execute(f"SELECT x, inet_server_port(), current_setting('transaction_read_only') "
                                    f"FROM {table} WHERE x = %s", (value,)).fetchone()
                    assert row == (value, PRIMARY_PORT, "on")
                    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                        with c.transaction():
                            c.execute(f"INSERT INTO {table} VALUES (5)")
            with c.transaction():
                assert c.execute("SELECT inet_server_port()").fetchone()[0] == REPLICA_PORT
    finally:
        with direct_primary() as p:
            p.execute(f"DROP TABLE {secret}; DROP TABLE {ul}")


def test_set_config_of_a_bound_value_reaches_the_replica_with_the_value():
    # psycopg binds the value (SQLAlchemy's and Django's server-side binding do too): the replica's
    # copy of the setting has the value, not the text "$1".
    with connect(autocommit=True) as c:
        c.execute("SELECT set_config('app.tenant', %s, false)", ["acme"])
        c.execute("SELECT set_config('TimeZone', %s, false)", ["America/New_York"])
        row = c.execute("SELECT inet_server_port(), current_setting('app.tenant'), current_setting('TimeZone'), "
                        "'2026-01-01 12:00+00'::timestamptz::text").fetchone()
        assert row == (REPLICA_PORT, "acme", "America/New_York", "2026-01-01 07:00:00-05")


def test_a_setting_rolled_back_to_a_savepoint_does_not_reach_the_replica():
    # SQLAlchemy's begin_nested, Django's nested atomic: a SET inside a savepoint that is rolled back is
    # gone, on the replica too; one the transaction keeps is there.
    with connect() as c:
        with c.transaction():
            c.execute("SELECT 1")
            with c.transaction(force_rollback=True):
                c.execute("SET statement_timeout = '200ms'")
            with c.transaction():
                c.execute("SET lock_timeout = '7s'")
        c.autocommit = True
        row = c.execute("SELECT inet_server_port(), current_setting('statement_timeout'), "
                        "current_setting('lock_timeout')").fetchone()
        assert row == (REPLICA_PORT, "0", "7s")
