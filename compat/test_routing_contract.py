"""The routing contract (DESIGN §3), statement by statement, proven by the backends.

Every statement carries a unique tag comment; after it ran, the primary's and the replica's statement
logs (log_statement = all) must show the tag on exactly the expected server. Where the statement can
say it itself, its inet_server_port() must agree. Each case runs on a fresh connection, through the
simple query protocol (psycopg2) and through the extended protocol (psycopg 3).
"""

import io
import uuid
from dataclasses import dataclass, field

import psycopg
import psycopg2
import pytest

from conftest import PRIMARY_PORT, REPLICA_PORT, direct_primary, proxy_dsn, unique, wait_replay

PORT_OF = {"primary": PRIMARY_PORT, "replica": REPLICA_PORT}


@dataclass
class Case:
    id: str
    sql: str                      # the statement checked; {tag} is replaced by a unique comment
    server: str                   # "primary" | "replica"
    before: list = field(default_factory=list)   # statements run first on the same connection
    port_col: bool = True         # the first row's last column is inet_server_port()
    simple_only: bool = False     # multi-statement strings: the extended protocol cannot carry them
    copy_in: str | None = None    # data for COPY ... FROM STDIN
    copy_out: bool = False        # COPY ... TO STDOUT: the output's last field is the port (if port_col)
    error: str | None = None      # the SQLSTATE the client must get instead of a result
    verify: str | None = None     # a query on the primary that must return true afterwards


CASES = [
    Case("select", "SELECT {tag} inet_server_port()", "replica"),
    Case("select-table", "SELECT {tag} count(*), inet_server_port() FROM {t}", "replica"),
    Case("select-leading-line-comment", "-- just a read\nSELECT {tag} inet_server_port()", "replica"),
    Case("with-read-only-cte", "WITH x AS (SELECT 1) SELECT {tag} inet_server_port() FROM x", "replica"),
    Case("for-update", "SELECT {tag} id, inet_server_port() FROM {t} WHERE id = 1 FOR UPDATE", "primary"),
    Case("for-no-key-update", "SELECT {tag} id, inet_server_port() FROM {t} WHERE id = 1 FOR NO KEY UPDATE", "primary"),
    Case("for-share", "SELECT {tag} id, inet_server_port() FROM {t} WHERE id = 1 FOR SHARE", "primary"),
    Case("for-key-share", "SELECT {tag} id, inet_server_port() FROM {t} WHERE id = 1 FOR KEY SHARE", "primary"),
    Case("for-update-skip-locked", "SELECT {tag} id, inet_server_port() FROM {t} ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", "primary"),
    Case("for-update-in-subquery", "SELECT {tag} s.id, inet_server_port() FROM (SELECT id FROM {t} WHERE id = 1 FOR UPDATE) s", "primary"),
    Case("cte-insert", "WITH ins AS (INSERT INTO {t} (v) VALUES ('cte') RETURNING id) SELECT {tag} count(*), inet_server_port() FROM ins", "primary"),
    Case("cte-delete", "WITH d AS (DELETE FROM {t} WHERE false RETURNING id) SELECT {tag} count(*), inet_server_port() FROM d", "primary"),
    Case("nextval", "SELECT {tag} nextval('{seq}'), inet_server_port()", "primary"),
    Case("setval", "SELECT {tag} setval('{seq}', 1000), inet_server_port()", "primary"),
    Case("currval-after-nextval", "SELECT {tag} currval('{seq}'), inet_server_port()", "primary",
         before=["SELECT nextval('{seq}')"]),
    Case("lastval-after-nextval", "SELECT {tag} lastval(), inet_server_port()", "primary",
         before=["SELECT nextval('{seq}')"]),
    Case("advisory-lock", "SELECT {tag} pg_advisory_unlock(4242), inet_server_port()", "primary",
         before=["SELECT pg_advisory_lock(4242)"], verify=None),
    Case("try-advisory-xact-lock", "SELECT {tag} pg_try_advisory_xact_lock(4243), inet_server_port()", "primary"),
    Case("txid-current", "SELECT {tag} txid_current(), inet_server_port()", "primary"),
    Case("pg-current-xact-id", "SELECT {tag} pg_current_xact_id(), inet_server_port()", "primary"),
    Case("pg-notify", "SELECT {tag} pg_notify('compat_rt', 'x'), inet_server_port()", "primary"),
    Case("set-config", "SELECT {tag} set_config('application_name', 'compat-rt', false), inet_server_port()", "primary"),
    Case("large-object", "SELECT {tag} lo_unlink(lo_create(0)), inet_server_port()", "primary"),
    # {fn} was created directly on the primary (as a migration tool would), after pgsplit started;
    # {pfn} was created through pgsplit.
    Case("volatile-user-function-that-writes", "SELECT {tag} {fn}('fn'), inet_server_port()", "primary",
         verify="SELECT count(*) > 0 FROM {t} WHERE v = 'fn'"),
    Case("volatile-user-function-created-through-proxy", "SELECT {tag} {pfn}('pfn'), inet_server_port()", "primary",
         verify="SELECT count(*) > 0 FROM {t} WHERE v = 'pfn'"),
    Case("stable-user-function", "SELECT {tag} {sfn}(), inet_server_port()", "replica"),
    Case("explain", "EXPLAIN {tag} SELECT * FROM {t}", "replica", port_col=False),
    Case("explain-analyze-select", "EXPLAIN ANALYZE {tag} SELECT * FROM {t}", "replica", port_col=False),
    Case("explain-analyze-insert", "EXPLAIN ANALYZE {tag} INSERT INTO {t} (v) VALUES ('explained')", "primary",
         port_col=False, verify="SELECT count(*) > 0 FROM {t} WHERE v = 'explained'"),
    Case("copy-query-to-stdout", "COPY (SELECT {tag} inet_server_port()) TO STDOUT", "replica", copy_out=True),
    Case("copy-table-to-stdout", "COPY {tag} {t} TO STDOUT", "replica", copy_out=True, port_col=False),
    Case("copy-dml-returning-to-stdout", "COPY (INSERT INTO {t} (v) VALUES ('copied') RETURNING {tag} inet_server_port()) TO STDOUT",
         "primary", copy_out=True, verify="SELECT count(*) > 0 FROM {t} WHERE v = 'copied'"),
    Case("copy-from-stdin", "COPY {tag} {t} (v) FROM STDIN", "primary", copy_in="{new}-1\n{new}-2\n", port_col=False,
         verify="SELECT count(*) = 2 FROM {t} WHERE v LIKE '{new}-%'"),
    Case("select-into", "SELECT {tag} inet_server_port() AS port INTO {new}", "primary", port_col=False,
         verify="SELECT port = " + str(PRIMARY_PORT) + " FROM {new}"),
    Case("create-table-as", "CREATE TABLE {new} AS SELECT {tag} inet_server_port() AS port", "primary", port_col=False,
         verify="SELECT port = " + str(PRIMARY_PORT) + " FROM {new}"),
    Case("table", "TABLE {t} {tag}", "replica", port_col=False),
    Case("values", "VALUES {tag} (1, 2)", "replica", port_col=False),
    Case("show", "SHOW {tag} port", "replica"),
    Case("insert", "INSERT {tag} INTO {t} (v) VALUES ('ins') RETURNING inet_server_port()", "primary"),
    Case("merge", "MERGE {tag} INTO {t} USING (SELECT -1 AS id) s ON {t}.id = s.id WHEN NOT MATCHED THEN INSERT (v) VALUES ('merged')",
         "primary", port_col=False, verify="SELECT count(*) > 0 FROM {t} WHERE v = 'merged'"),
    Case("do-block", "DO {tag} $$ BEGIN PERFORM 1; END $$", "primary", port_col=False),
    Case("call-procedure", "CALL {tag} {proc}('called')", "primary", port_col=False,
         verify="SELECT count(*) > 0 FROM {t} WHERE v = 'called'"),
    Case("listen", "LISTEN {tag} compat_rt_chan", "primary", port_col=False),
    Case("vacuum", "VACUUM {tag} {t}", "primary", port_col=False),
    Case("multi-statement-reads", "SELECT 1; SELECT {tag} inet_server_port()", "replica", simple_only=True),
    Case("multi-statement-write-then-read", "INSERT INTO {t} (v) VALUES ('multi'); SELECT {tag} inet_server_port()", "primary",
         simple_only=True, verify="SELECT count(*) > 0 FROM {t} WHERE v = 'multi'"),
    Case("multi-statement-read-then-write", "SELECT {tag} inet_server_port(); INSERT INTO {t} (v) VALUES ('multi2')", "primary",
         simple_only=True, port_col=False, verify="SELECT count(*) > 0 FROM {t} WHERE v = 'multi2'"),
    Case("hint-writeable", "/* pgsplit: writeable */ SELECT {tag} inet_server_port()", "primary"),
    Case("hint-main", "/* pgsplit: main */ SELECT {tag} inet_server_port()", "replica"),
    Case("hint-main-on-a-write-is-refused", "/* pgsplit: main */ INSERT {tag} INTO {t} (v) VALUES ('hinted')", "replica",
         port_col=False, error="25006"),
    Case("sql-prepare-execute-read", "EXECUTE {tag} compat_rt_r", "replica",
         before=["PREPARE compat_rt_r AS SELECT inet_server_port()"]),
    Case("sql-prepare-execute-write", "EXECUTE {tag} compat_rt_w", "primary",
         before=["PREPARE compat_rt_w AS INSERT INTO {t} (v) VALUES ('prepared') RETURNING inet_server_port()"]),
    Case("begin-serializable-read-only", "SELECT {tag} inet_server_port()", "primary",
         before=["BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY"]),
    Case("begin-read-only", "SELECT {tag} inet_server_port()", "replica", before=["BEGIN READ ONLY"]),
    Case("begin-read-write", "SELECT {tag} inet_server_port()", "primary", before=["BEGIN"]),
]


@pytest.fixture(scope="module")
def objs(proxy):
    o = {"t": unique("compat_rt"), "seq": unique("compat_rt_seq"), "fn": unique("compat_rt_write"),
         "sfn": unique("compat_rt_stable"), "proc": unique("compat_rt_proc"),
         "pfn": unique("compat_rt_pwrite")}
    with direct_primary() as p:
        p.execute(f"CREATE TABLE {o['t']} (id serial PRIMARY KEY, v text)")
        p.execute(f"INSERT INTO {o['t']} (v) VALUES ('one'), ('two')")
    # First a function created through pgsplit (which then reloads its catalog) ...
    wait_replay()
    with psycopg.connect(proxy_dsn(), autocommit=True) as c:
        c.execute(f"CREATE FUNCTION {o['pfn']}(val text) RETURNS int LANGUAGE sql VOLATILE AS "
                  f"$$ INSERT INTO {o['t']} (v) VALUES (val) RETURNING id $$")
    # ... then the rest directly on the primary, the way a migration tool that bypasses pgsplit would.
    with direct_primary() as p:
        p.execute(f"CREATE SEQUENCE {o['seq']}")
        p.execute(f"CREATE FUNCTION {o['fn']}(val text) RETURNS int LANGUAGE sql VOLATILE AS "
                  f"$$ INSERT INTO {o['t']} (v) VALUES (val) RETURNING id $$")
        p.execute(f"CREATE FUNCTION {o['sfn']}() RETURNS int LANGUAGE sql STABLE AS $$ SELECT 7 $$")
        p.execute(f"CREATE PROCEDURE {o['proc']}(val text) LANGUAGE sql AS "
                  f"$$ INSERT INTO {o['t']} (v) VALUES (val) $$")
    wait_replay()
    yield o
    with direct_primary() as p:
        p.execute(f"DROP TABLE IF EXISTS {o['t']}")
        p.execute(f"DROP SEQUENCE IF EXISTS {o['seq']}")
        p.execute(f"DROP FUNCTION IF EXISTS {o['fn']}(text)")
        p.execute(f"DROP FUNCTION IF EXISTS {o['pfn']}(text)")
        p.execute(f"DROP FUNCTION IF EXISTS {o['sfn']}()")
        p.execute(f"DROP PROCEDURE IF EXISTS {o['proc']}(text)")


def render(text: str, subst: dict) -> str:
    for k, v in subst.items():
        text = text.replace("{" + k + "}", v)
    return text


def run_simple(case: Case, subst: dict):
    """psycopg2: the simple query protocol. Returns (first row of the last result or copy text, error)."""
    c = psycopg2.connect(proxy_dsn(), connect_timeout=10)
    c.autocommit = True
    try:
        cur = c.cursor()
        for b in case.before:
            cur.execute(render(b, subst))
        sql = render(case.sql, subst)
        try:
            if case.copy_in is not None:
                cur.copy_expert(sql, io.StringIO(render(case.copy_in, subst)))
                return None, None
            if case.copy_out:
                out = io.StringIO()
                cur.copy_expert(sql, out)
                return out.getvalue(), None
            cur.execute(sql)
            return (cur.fetchone() if cur.description else None), None
        except psycopg2.Error as e:
            return None, e.pgcode or str(e)
    finally:
        c.close()


def run_extended(case: Case, subst: dict):
    """psycopg 3: the extended query protocol."""
    with psycopg.connect(proxy_dsn(), autocommit=True, connect_timeout=10) as c:
        for b in case.before:
            c.execute(render(b, subst))
        sql = render(case.sql, subst)
        try:
            with c.cursor() as cur:
                if case.copy_in is not None:
                    with cur.copy(sql) as cp:
                        cp.write(render(case.copy_in, subst))
                    return None, None
                if case.copy_out:
                    with cur.copy(sql) as cp:
                        return b"".join(bytes(x) for x in cp).decode(), None
                cur.execute(sql)
                return (cur.fetchone() if cur.description else None), None
        except psycopg.Error as e:
            return None, (e.sqlstate or str(e))


# Multi-statement strings run with the simple protocol only: the extended protocol cannot carry them.
PARAMS = [pytest.param(c, proto, id=f"{c.id}-{proto}") for c in CASES for proto in ("simple", "extended")
          if not (proto == "extended" and c.simple_only)]


@pytest.mark.parametrize("case,protocol", PARAMS)
def test_routing(case: Case, protocol, objs, server_logs):
    tag = f"compat_tag_{uuid.uuid4().hex}"
    subst = dict(objs, tag=f"/* {tag} */", new=unique("compat_rt_new"))
    mark = server_logs.mark()
    try:
        result, error = (run_simple if protocol == "simple" else run_extended)(case, subst)
        ran_on = server_logs.servers_with(tag, mark)
        where = f"{render(case.sql, subst)!r} ran on {sorted(ran_on) or 'no server'}, expected {case.server}"
        if case.error:
            assert error == case.error, f"{where}; expected error {case.error}, got {error!r} / {result!r}"
        else:
            assert error is None, f"{where}; the client got error {error}"
        assert ran_on == {case.server}, where
        if case.port_col and not case.error:
            if case.copy_out:
                port = int(result.strip().splitlines()[0].split("\t")[-1])
            else:
                port = int(result[-1])
            assert port == PORT_OF[case.server], f"{where}; inet_server_port() said {port}"
        if case.verify:
            with direct_primary() as p:
                assert p.execute(render(case.verify, subst)).fetchone()[0] is True, \
                    f"{where}; on the primary, {render(case.verify, subst)} is not true"
    finally:
        with direct_primary() as p:
            p.execute(f"DROP TABLE IF EXISTS {subst['new']}")
