"""pgbench through pgsplit: -i, then select-only and tpcb-like in each query mode, no failed transaction.

Where the work ran is read from the backends: the primary's pg_stat_user_tables / pgbench_history and
the replica's statement counters (pg_stat_database.xact_commit) around the select-only run."""

import re
import subprocess

import pytest

from conftest import direct_primary, direct_replica, primary_scalar, psql_env, wait_replay

PREFIX = "compat_bench"
MODES = ["simple", "extended", "prepared"]


def pgbench(*args, timeout=240):
    p = subprocess.run(["pgbench", "-n", *args], env=psql_env(), capture_output=True, text=True, timeout=timeout)
    return p


def parse(out: str) -> dict:
    res = {}
    m = re.search(r"number of transactions actually processed: (\d+)", out)
    res["processed"] = int(m.group(1)) if m else None
    m = re.search(r"number of failed transactions: (\d+)", out)
    res["failed"] = int(m.group(1)) if m else 0
    return res


@pytest.fixture(scope="module")
def bench_db():
    # pgbench -i through the proxy: DDL, COPY FROM and VACUUM all need the primary.
    p = subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=psql_env(),
                       capture_output=True, text=True, timeout=240)
    return p


def test_init_through_proxy(bench_db):
    p = bench_db
    assert p.returncode == 0, f"pgbench -i failed:\n{p.stdout}\n{p.stderr}"
    assert primary_scalar("SELECT count(*) FROM pgbench_accounts") == 100000
    assert primary_scalar("SELECT count(*) FROM pgbench_branches") == 1
    assert primary_scalar("SELECT count(*) FROM pgbench_history") == 0


def xact_commits(conn) -> int:
    return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = 'app'").fetchone()[0]


@pytest.mark.parametrize("mode", MODES)
def test_select_only(bench_db, mode):
    assert bench_db.returncode == 0, "pgbench -i failed"
    wait_replay()
    with direct_replica() as r:
        r.execute("SELECT pg_stat_clear_snapshot()")
        before = xact_commits(r)
    p = pgbench("-S", "-M", mode, "-c", "2", "-j", "2", "-t", "200")
    assert p.returncode == 0, f"pgbench -S -M {mode} failed:\n{p.stdout}\n{p.stderr}"
    res = parse(p.stdout)
    assert res["processed"] == 400, p.stdout
    assert res["failed"] == 0, p.stdout
    # The replica committed (at least) those 400 read transactions; stats are flushed lazily, so
    # force them out by reading in a fresh session after pgbench's backends ended.
    import time
    after = before
    for _ in range(200):
        with direct_replica() as r:
            after = xact_commits(r)
        if after - before >= 400:
            break
        time.sleep(0.05)
    assert after - before >= 400, f"replica committed only {after - before} transactions during -S"


@pytest.mark.parametrize("mode", MODES)
def test_tpcb_like(bench_db, mode):
    assert bench_db.returncode == 0, "pgbench -i failed"
    before = primary_scalar("SELECT count(*) FROM pgbench_history")
    p = pgbench("-M", mode, "-c", "2", "-j", "2", "-t", "100")
    assert p.returncode == 0, f"pgbench -M {mode} failed:\n{p.stdout}\n{p.stderr}"
    res = parse(p.stdout)
    assert res["processed"] == 200, p.stdout
    assert res["failed"] == 0, p.stdout
    # Every transaction wrote its history row on the primary, and the balances stay consistent.
    assert primary_scalar("SELECT count(*) FROM pgbench_history") - before == 200
    with direct_primary() as c:
        b, t, a, h = c.execute("SELECT (SELECT sum(bbalance) FROM pgbench_branches),"
                               " (SELECT sum(tbalance) FROM pgbench_tellers),"
                               " (SELECT sum(abalance) FROM pgbench_accounts),"
                               " (SELECT sum(delta) FROM pgbench_history)").fetchone()
    assert b == t == a == h
