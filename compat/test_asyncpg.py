"""asyncpg through pgsplit: prepared statements, binary types, transactions, timeouts, executemany, pools.

asyncpg speaks only the extended protocol with binary results, and prepares every statement."""

import asyncio
import datetime
import decimal
import json
import uuid

import asyncpg
import pytest

from conftest import (HOST, PASSWORD, PRIMARY_PORT, PROXY_PORT, REPLICA_PORT, USER, direct_primary,
                      direct_replica, drop_table, primary_scalar, unique, wait_replay)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


async def connect(**kw):
    return await asyncpg.connect(host=HOST, port=PROXY_PORT, user=USER, password=PASSWORD, database="app",
                                 ssl=False, timeout=10, **kw)


@pytest.fixture
def table():
    t = unique("compat_apg")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {t} (id int primary key, v text)")
    wait_replay()
    yield t
    drop_table(t)


def test_prepared_statements_reused(table):
    async def body():
        c = await connect()
        try:
            ins = await c.prepare(f"INSERT INTO {table} VALUES ($1, $2) RETURNING inet_server_port()")
            sel = await c.prepare("SELECT $1::int * 3, inet_server_port(), pg_is_in_recovery()")
            for i in range(1, 11):
                assert await ins.fetchval(i, f"v{i}") == PRIMARY_PORT
                assert tuple(await sel.fetchrow(i)) == (3 * i, REPLICA_PORT, True)
            # The statement cache: the same text via fetch() reuses asyncpg's prepared statement.
            for i in range(5):
                assert await c.fetchval("SELECT $1::text || 'x'", str(i)) == f"{i}x"
        finally:
            await c.close()
    run(body())
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 10


def test_prepare_then_plain_statements_and_copy(table):
    """asyncpg prepares with Parse / Describe / Flush and no Sync; the plain Query, transaction and COPY
    that follow a prepared read must still run (they hung, or hit the replica, before)."""
    async def body():
        c = await connect()
        try:
            sel = await c.prepare(f"SELECT count(*) FROM {table}")
            await c.execute(f"INSERT INTO {table} VALUES (1, 'plain')")
            await c.prepare("SELECT 1")
            await c.execute(f"INSERT INTO {table} VALUES ($1, $2)", 2, "extended")
            await c.prepare("SELECT 2")
            async with c.transaction():
                await c.execute(f"INSERT INTO {table} VALUES (3, 'in a transaction')")
            wait_replay()  # compat runs with read_your_writes = off
            assert await sel.fetchval() == 3
        finally:
            await c.close()
        # copy_records_to_table prepares `SELECT * FROM t LIMIT 1` itself, first thing in a session.
        fresh = await connect()
        try:
            await fresh.copy_records_to_table(table, records=[(4, "copied")])
        finally:
            await fresh.close()
    run(body())
    assert primary_scalar(f"SELECT string_agg(v, ',' ORDER BY id) FROM {table}") == \
        "plain,extended,in a transaction,copied"


def test_binary_types_round_trip():
    values = {
        "int8": 9_007_199_254_740_993,
        "numeric": decimal.Decimal("12345678901234567890.123456789"),
        "uuid": uuid.UUID("6f1c9b0e-3d1a-4b7e-9d4c-2a5b8e7f0c11"),
        "jsonb": json.dumps({"a": [1, 2, {"b": None}], "ü": "ß"}),
        "int4[]": [1, None, 3],
        "text[]": ["a", "b c", None, ""],
        "timestamptz": datetime.datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=datetime.timezone.utc),
        "bytea": bytes(range(256)) * 4,
    }

    async def body():
        c = await connect()
        try:
            t = unique("compat_types")
            await c.execute(f"CREATE TABLE {t} (i8 int8, n numeric, u uuid, j jsonb, a int4[], s text[],"
                            " ts timestamptz, b bytea)")
            try:
                args = list(values.values())
                # Round trip through a read (replica) ...
                row = await c.fetchrow("SELECT $1::int8, $2::numeric, $3::uuid, $4::jsonb, $5::int4[], $6::text[],"
                                       " $7::timestamptz, $8::bytea, inet_server_port()", *args)
                got = list(row)
                assert got[0] == values["int8"] and type(got[0]) is int
                assert got[1] == values["numeric"]
                assert got[2] == values["uuid"]
                assert json.loads(got[3]) == json.loads(values["jsonb"])
                assert got[4:8] == [values["int4[]"], values["text[]"], values["timestamptz"], values["bytea"]]
                assert row[-1] == REPLICA_PORT
                # ... and through a write (primary), read back from the primary directly.
                await c.execute(f"INSERT INTO {t} VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", *args)
                with direct_primary() as p:
                    got = p.execute(f"SELECT i8, n, u, j, a, s, ts, b FROM {t}").fetchone()
                assert got[0] == values["int8"]
                assert got[1] == values["numeric"]
                assert got[2] == values["uuid"]
                assert got[3] == json.loads(values["jsonb"])
                assert got[4] == values["int4[]"] and got[5] == values["text[]"]
                assert got[6] == values["timestamptz"]
                assert bytes(got[7]) == values["bytea"]
            finally:
                await c.execute(f"DROP TABLE {t}")
        finally:
            await c.close()
    run(body())


def test_transactions(table):
    async def body():
        c = await connect()
        try:
            async with c.transaction():
                await c.execute(f"INSERT INTO {table} VALUES (1, 'a')")
                assert await c.fetchval("SELECT inet_server_port()") == PRIMARY_PORT
                assert primary_scalar(f"SELECT count(*) FROM {table}") == 0
            assert primary_scalar(f"SELECT count(*) FROM {table}") == 1
            with pytest.raises(RuntimeError):
                async with c.transaction():
                    await c.execute(f"INSERT INTO {table} VALUES (2, 'b')")
                    raise RuntimeError("roll back")
            assert primary_scalar(f"SELECT count(*) FROM {table}") == 1
            wait_replay()
            async with c.transaction(readonly=True):
                row = await c.fetchrow(f"SELECT inet_server_port(), pg_is_in_recovery(), count(*) FROM {table}")
                assert tuple(row) == (REPLICA_PORT, True, 1)
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
                async with c.transaction(readonly=True):
                    await c.execute(f"INSERT INTO {table} VALUES (3, 'c')")
            assert await c.fetchval("SELECT 1") == 1
        finally:
            await c.close()
    run(body())
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 1


def test_timeout_cancels_and_connection_stays_usable():
    async def body():
        c = await connect()
        try:
            with pytest.raises(asyncio.TimeoutError):
                await c.execute("SELECT pg_sleep(20)", timeout=1)
            # asyncpg sent a CancelRequest; the connection must be clean and usable.
            assert await c.fetchval("SELECT 2 + 2") == 4
            assert await c.fetchval("SELECT inet_server_port()") == REPLICA_PORT
            # The cancelled statement is not still running on any backend.
            for conn_fn in (direct_primary, direct_replica):
                with conn_fn() as p:
                    n = p.execute("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(20)'"
                                  " AND state = 'active'").fetchone()[0]
                    assert n == 0
            with pytest.raises(asyncio.TimeoutError):
                await c.fetchval("SELECT pg_sleep(20), 1", timeout=1)
            assert await c.fetchval("SELECT 5") == 5
        finally:
            await c.close()
    run(body())


def test_executemany(table):
    async def body():
        c = await connect()
        try:
            await c.executemany(f"INSERT INTO {table} VALUES ($1, $2)", [(i, f"m{i}") for i in range(1, 201)])
            assert await c.fetchval("SELECT 1") == 1
        finally:
            await c.close()
    run(body())
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 200
    assert primary_scalar(f"SELECT v FROM {table} WHERE id = 200") == "m200"


def test_pool_connections_keep_reading_from_the_replica(table):
    """asyncpg's pool resets a connection at every release (pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL): that must not tie it to the primary for good."""
    async def body():
        pool = await asyncpg.create_pool(host=HOST, port=PROXY_PORT, user=USER, password=PASSWORD,
                                         database="app", ssl=False, min_size=1, max_size=2)
        try:
            for i in range(1, 6):
                async with pool.acquire() as c:
                    assert await c.fetchval(f"INSERT INTO {table} VALUES ($1, 'p') RETURNING inet_server_port()",
                                            i) == PRIMARY_PORT
                async with pool.acquire() as c:
                    assert tuple(await c.fetchrow("SELECT inet_server_port(), pg_is_in_recovery()")) == (REPLICA_PORT, True)
        finally:
            await pool.close()
    run(body())
    assert primary_scalar(f"SELECT count(*) FROM {table}") == 5


def test_cached_statement_after_alter_table_is_refused_then_prepared_again():
    """asyncpg caches each statement's columns. A statement prepared on the replica, then run in a
    transaction (on the primary) after its table changed: PostgreSQL answers 0A000 and asyncpg prepares
    it again later. Through pgsplit the primary gets a fresh copy with the new columns, which must not
    be used: before, asyncpg decoded it with the old ones ("unexpected trailing 4 bytes")."""
    t = unique("compat_apg_alter")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {t} (n int)")
        p.execute(f"GRANT SELECT ON {t} TO app_ro")
        p.execute(f"INSERT INTO {t} VALUES (5)")
    wait_replay()
    query = f"SELECT n FROM {t}"

    async def body():
        c = await connect()
        try:
            for _ in range(3):
                assert await c.fetchval(query) == 5
            with direct_primary() as p:
                p.execute(f"ALTER TABLE {t} ALTER COLUMN n TYPE bigint USING 12345678912")
            with pytest.raises(asyncpg.exceptions.InvalidCachedStatementError):
                async with c.transaction():
                    await c.fetchval(query)
            wait_replay()
            assert await c.fetchval(query) == 12345678912
            async with c.transaction():
                assert await c.fetchval(query) == 12345678912
        finally:
            await c.close()
    try:
        run(body())
    finally:
        drop_table(t)


@pytest.mark.parametrize("new_type, value, expected", [
    ("bigint", 5.0, 1),                 # float8 bytes read as int8 would be another number: no row
    ("numeric", 5.0, 1),
    ("timestamptz", datetime.datetime(2026, 1, 2, 3, 4, 5), 1),
])
def test_parameter_types_stay_after_the_column_type_changed(new_type, value, expected):
    """asyncpg encodes each value for the parameter type the server reported when it prepared the
    statement, and PostgreSQL keeps that type for the statement's life. The proxy's copy on the
    primary must take the same types, not the ones the changed column would give a new statement:
    before, a float8 5.0 reached the primary as int8 4617315517961601024 (no row), or failed 08P01."""
    t = unique("compat_apg_param")
    old_type = "timestamp" if new_type == "timestamptz" else "float8"
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {t} (k {old_type}, v text)")
        p.execute(f"GRANT SELECT ON {t} TO app_ro")
        p.execute(f"INSERT INTO {t} VALUES (%s, 'five')", (value,))
    wait_replay()
    query = f"SELECT count(*) FROM {t} WHERE k = $1"

    async def body():
        c = await connect()
        try:
            assert await c.fetchval(query, value) == expected
            with direct_primary() as p:
                p.execute(f"ALTER TABLE {t} ALTER COLUMN k TYPE {new_type}")
            wait_replay()
            assert await c.fetchval(query, value) == expected
            async with c.transaction():
                assert await c.fetchval(query, value) == expected
                assert await c.fetchval("SELECT inet_server_port()") == PRIMARY_PORT
        finally:
            await c.close()
    try:
        run(body())
    finally:
        drop_table(t)


def test_reads_the_replica_refuses_are_answered_by_the_primary():
    """asyncpg prepares (Parse, Describe, Flush) and then binds and executes: a view whose function
    writes, and a table another connection created a moment ago, are answered as the primary would."""
    log, view = unique("compat_apgrl"), unique("compat_apgrv")
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {log} (x int)")
        p.execute(f"CREATE FUNCTION {log}_f() RETURNS int LANGUAGE plpgsql AS "
                  f"$$BEGIN INSERT INTO {log} VALUES (1); RETURN 1; END$$")
        p.execute(f"CREATE VIEW {view} AS SELECT {log}_f() AS r")
        p.execute(f"GRANT SELECT ON {view}, {log} TO app_ro")
    wait_replay()

    async def body():
        c = await connect()
        other = await connect()
        try:
            for _ in range(3):
                assert await c.fetchval(f"SELECT r FROM {view}") == 1
            assert primary_scalar(f"SELECT count(*) FROM {log}") == 3, "each hidden write ran once"
            fresh = unique("compat_apgrf")
            await other.execute(f"CREATE TABLE {fresh} AS SELECT 1 AS x")
            assert await c.fetchval(f"SELECT x + $1 FROM {fresh}", 1) == 2
            await other.execute(f"DROP TABLE {fresh}")
        finally:
            await c.close()
            await other.close()
    try:
        run(body())
    finally:
        with direct_primary() as p:
            p.execute(f"DROP VIEW {view}; DROP FUNCTION {log}_f(); DROP TABLE {log}")


def test_set_config_of_a_bound_value_reaches_the_replica_with_the_value():
    async def body():
        c = await connect()
        try:
            await c.execute("SELECT set_config('app.tenant', $1, false)", "acme")
            row = await c.fetchrow("SELECT inet_server_port(), current_setting('app.tenant')")
            assert tuple(row) == (REPLICA_PORT, "acme")
        finally:
            await c.close()
    run(body())
