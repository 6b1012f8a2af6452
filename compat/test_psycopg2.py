"""psycopg2 through pgsplit: the basics."""

import io

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import pytest

from conftest import (PRIMARY_PORT, REPLICA_PORT, direct_primary, drop_table, primary_scalar, proxy_dsn,
                      unique, wait_replay)


def connect():
    return psycopg2.connect(proxy_dsn(), connect_timeout=10)


@pytest.fixture
def table():
    t = unique("compat_pg2")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {t} (id int primary key, v text)")
    wait_replay()
    yield t
    drop_table(t)


def test_autocommit_on_reads_replica_writes_primary(table):
    c = connect()
    try:
        c.autocommit = True
        cur = c.cursor()
        cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
        assert cur.fetchone() == (REPLICA_PORT, True)
        cur.execute(f"INSERT INTO {table} VALUES (%s, %s) RETURNING inet_server_port()", (1, "a"))
        assert cur.fetchone()[0] == PRIMARY_PORT
        assert primary_scalar(f"SELECT v FROM {table} WHERE id = 1") == "a"
    finally:
        c.close()


def test_autocommit_off_transaction_on_primary(table):
    c = connect()
    try:
        cur = c.cursor()
        cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        cur.execute(f"SELECT inet_server_port(), count(*) FROM {table}")
        assert cur.fetchone() == (PRIMARY_PORT, 1)
        assert c.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INTRANS
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 0
        c.commit()
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 1
        cur.execute(f"DELETE FROM {table}")
        c.rollback()
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 1
        # Even a pure read opened by psycopg2's implicit BEGIN is a read-write transaction.
        cur.execute("SELECT inet_server_port()")
        assert cur.fetchone()[0] == PRIMARY_PORT
        c.rollback()
    finally:
        c.close()


def test_set_session_readonly_reads_on_replica(table):
    c = connect()
    try:
        c.set_session(readonly=True)
        cur = c.cursor()
        cur.execute("SELECT inet_server_port(), pg_is_in_recovery(), current_setting('transaction_read_only')")
        assert cur.fetchone() == (REPLICA_PORT, True, "on")
        c.commit()
        with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute(f"INSERT INTO {table} VALUES (1, 'x')")
        c.rollback()
        c.set_session(readonly=False)
        cur.execute("SELECT inet_server_port()")
        assert cur.fetchone()[0] == PRIMARY_PORT
        c.rollback()
    finally:
        c.close()


def test_named_cursors(table):
    c = connect()
    try:
        cur = c.cursor()
        cur.execute(f"INSERT INTO {table} SELECT g, 'v' || g FROM generate_series(1, 500) g")
        named = c.cursor("compat_pg2_cur")
        named.itersize = 50
        named.execute(f"SELECT id, inet_server_port() FROM {table} ORDER BY id")
        rows = list(named)
        named.close()
        assert [r[0] for r in rows] == list(range(1, 501))
        assert {r[1] for r in rows} == {PRIMARY_PORT}
        c.commit()
        # A read-only session: the named cursor is served by the replica.
        wait_replay()
        c.set_session(readonly=True)
        named = c.cursor("compat_pg2_cur_ro")
        named.execute(f"SELECT id, inet_server_port() FROM {table} ORDER BY id")
        first = named.fetchmany(7)
        rest = named.fetchall()
        named.close()
        c.commit()
        assert len(first + rest) == 500
        assert {r[1] for r in first + rest} == {REPLICA_PORT}
    finally:
        c.close()


def test_copy_expert_both_ways(table):
    c = connect()
    try:
        c.autocommit = True
        cur = c.cursor()
        data = "".join(f"{i}\tcopy {i}\n" for i in range(1, 301))
        cur.copy_expert(f"COPY {table} (id, v) FROM STDIN", io.StringIO(data))
        assert cur.rowcount == 300
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 300
        wait_replay()
        out = io.StringIO()
        cur.copy_expert(f"COPY (SELECT id, v FROM {table} ORDER BY id) TO STDOUT", out)
        assert out.getvalue() == data
        out = io.StringIO()
        cur.copy_expert(f"COPY (SELECT inet_server_port()) TO STDOUT", out)
        assert out.getvalue() == f"{REPLICA_PORT}\n"
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    finally:
        c.close()


def test_error_in_transaction_until_rollback(table):
    c = connect()
    try:
        cur = c.cursor()
        cur.execute(f"INSERT INTO {table} VALUES (1, 'a')")
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(f"INSERT INTO {table} VALUES (1, 'b')")
        assert c.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
        for stmt in ("SELECT 1", f"INSERT INTO {table} VALUES (2, 'c')", "SELECT inet_server_port()"):
            with pytest.raises(psycopg2.errors.InFailedSqlTransaction) as e:
                cur.execute(stmt)
            assert e.value.pgcode == "25P02"
        c.rollback()
        assert c.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_IDLE
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
        c.commit()
        assert primary_scalar(f"SELECT count(*) FROM {table}") == 0
    finally:
        c.close()


def test_reads_the_replica_refuses_are_answered_by_the_primary():
    # What the query's names stand for is not in its text: a view whose function writes, a view over
    # an unlogged table, a schema the replica's user may not use, a table another connection created
    # a moment ago. Each is answered as a direct connection to the primary would answer it.
    log, view_wr, ul, view_ul, schema = (unique("compat_refl"), unique("compat_refv"), unique("compat_refu"),
                                         unique("compat_refw"), unique("compat_refs"))
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {log} (x int)")
        p.execute(f"CREATE FUNCTION {log}_f() RETURNS int LANGUAGE plpgsql AS "
                  f"$$BEGIN INSERT INTO {log} VALUES (1); RETURN 1; END$$")
        p.execute(f"CREATE VIEW {view_wr} AS SELECT {log}_f() AS r")
        p.execute(f"CREATE UNLOGGED TABLE {ul} (x int)")
        p.execute(f"INSERT INTO {ul} VALUES (7)")
        p.execute(f"CREATE VIEW {view_ul} AS SELECT x FROM {ul}")
        p.execute(f"CREATE SCHEMA {schema}")
        p.execute(f"CREATE TABLE {schema}.t (x int)")
        p.execute(f"INSERT INTO {schema}.t VALUES (9)")
        p.execute(f"GRANT SELECT ON {view_wr}, {view_ul}, {ul}, {log} TO app_ro")
    wait_replay()
    c = connect()
    c.autocommit = True
    try:
        cur = c.cursor()
        cur.execute(f"SELECT * FROM {view_wr}")
        assert cur.fetchall() == [(1,)]
        assert primary_scalar(f"SELECT count(*) FROM {log}") == 1, "the hidden write ran once, on the primary"
        cur.execute(f"SELECT * FROM {view_ul}")
        assert cur.fetchall() == [(7,)]
        cur.execute(f"SELECT x FROM {schema}.t")
        assert cur.fetchall() == [(9,)]
        # Plain reads still go to the replica afterwards.
        cur.execute("SELECT inet_server_port()")
        assert cur.fetchone()[0] == REPLICA_PORT
        # Made on another connection just now: the replica may not have it yet; the primary does.
        fresh = unique("compat_reff")
        other = connect()
        other.autocommit = True
        try:
            other.cursor().execute(f"CREATE TABLE {fresh} AS SELECT 1 AS x")
            cur.execute(f"SELECT x FROM {fresh}")
            assert cur.fetchall() == [(1,)]
        finally:
            other.close()
            drop_table(fresh)
        # An error the primary would give too reaches the client as it is, once.
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("SELECT 1/0")
        cur.execute("SELECT 2")
        assert cur.fetchone() == (2,)
    finally:
        c.close()
        with direct_primary() as p:
            p.execute(f"DROP VIEW {view_wr}; DROP VIEW {view_ul}; DROP FUNCTION {log}_f() CASCADE; "
                      f"DROP TABLE {log}, {ul}; DROP SCHEMA {schema} CASCADE")


def test_read_only_transaction_over_a_table_the_replica_may_not_read():
    # set_session(readonly=True): psycopg2 starts each transaction with BEGIN READ ONLY, then sends the
    # read as a simple query. The replica's user may not read the table: the transaction runs on the
    # primary, still read-only.
    secret = unique("compat_ro2s")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {secret} (x int)")
        p.execute(f"INSERT INTO {secret} VALUES (2)")
        p.execute(f"REVOKE ALL ON {secret} FROM app_ro")
    wait_replay()
    c = connect()
    try:
        c.set_session(readonly=True)
        cur = c.cursor()
        cur.execute(f"SELECT x, inet_server_port(), current_setting('transaction_read_only') FROM {secret}")
        assert cur.fetchall() == [(2, PRIMARY_PORT, "on")]
        cur.execute("SELECT inet_server_port()")
        assert cur.fetchone()[0] == PRIMARY_PORT, "the transaction stays where it started"
        c.rollback()
        cur.execute("SELECT inet_server_port()")
        assert cur.fetchone()[0] == REPLICA_PORT
        c.rollback()
    finally:
        c.close()
        with direct_primary() as p:
            p.execute(f"DROP TABLE {secret}")
