"""psql through pgsplit: routing of reads and writes, \\copy both ways, cancel with SIGINT, -f scripts."""

import signal
import subprocess
import time

from conftest import (direct_primary, direct_replica, drop_table, primary_scalar, proxy_dsn, psql_env, unique,
                      wait_replay, REPLICA_PORT, PRIMARY_PORT)


def psql(*args, input=None, check=True, timeout=120):
    p = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", *args], env=psql_env(), input=input,
                       capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"psql {args} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    return p


def test_read_runs_on_replica():
    out = psql("-c", "SELECT inet_server_port(), pg_is_in_recovery()").stdout.strip()
    assert out == f"{REPLICA_PORT}|t"


def test_write_runs_on_primary_and_is_read_back():
    t = unique("compat_psql_rw")
    try:
        psql("-c", f"CREATE TABLE {t} (id int primary key, port int)")
        out = psql("-c", f"INSERT INTO {t} VALUES (1, inet_server_port()) RETURNING port").stdout
        assert out.splitlines()[0] == str(PRIMARY_PORT)
        # The row is on the primary, written by the primary.
        assert primary_scalar(f"SELECT port FROM {t} WHERE id = 1") == PRIMARY_PORT
        wait_replay()
        out = psql("-c", f"SELECT id, inet_server_port() FROM {t}").stdout.strip()
        assert out == f"1|{REPLICA_PORT}"
    finally:
        drop_table(t)


def test_copy_from_and_to_a_table(tmp_path):
    t = unique("compat_psql_copy")
    src = tmp_path / "in.csv"
    src.write_text("".join(f"{i},name {i}\n" for i in range(1, 501)))
    dst = tmp_path / "out.csv"
    try:
        psql("-c", f"CREATE TABLE {t} (id int, name text)")
        out = psql("-c", f"\\copy {t} FROM '{src}' WITH (FORMAT csv)").stdout.strip()
        assert out == "COPY 500"
        assert primary_scalar(f"SELECT count(*) FROM {t}") == 500
        assert primary_scalar(f"SELECT sum(id) FROM {t}") == sum(range(1, 501))
        wait_replay()
        out = psql("-c", f"\\copy (SELECT id, name FROM {t} ORDER BY id) TO '{dst}' WITH (FORMAT csv)").stdout
        assert out.strip() == "COPY 500"
        assert dst.read_text() == src.read_text()
        # A whole-table \copy ... TO as well.
        dst2 = tmp_path / "out2.csv"
        psql("-c", f"\\copy {t} TO '{dst2}' WITH (FORMAT csv)")
        assert sorted(dst2.read_text().splitlines()) == sorted(src.read_text().splitlines())
    finally:
        drop_table(t)


def test_sigint_cancels_a_long_query_and_the_proxy_keeps_serving():
    tag = unique("compat_cancel")
    p = subprocess.Popen(["psql", "-X", "-At", "-c", f"SELECT pg_sleep(30) /* {tag} */"], env=psql_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait until the statement is really running on a backend (seen from the backends).
        running = False
        query = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active' AND pid <> pg_backend_pid()"
        for _ in range(600):
            n = 0
            for connect in (direct_primary, direct_replica):
                with connect() as conn:
                    n += conn.execute(query, (f"%{tag}%",)).fetchone()[0]
            if n:
                running = True
                break
            time.sleep(0.05)
        assert running, "pg_sleep never showed up as active on either backend"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=25)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert "canceling statement due to user request" in err, err
    assert p.returncode != 0
    # The proxy still serves, this client and a new one.
    assert psql("-c", "SELECT 42").stdout.strip() == "42"


def test_script_file_with_a_transaction(tmp_path):
    t = unique("compat_psql_script")
    script = tmp_path / "script.sql"
    script.write_text(f"""
CREATE TABLE {t} (id int primary key, v text);
BEGIN;
INSERT INTO {t} VALUES (1, 'one'), (2, 'two');
UPDATE {t} SET v = v || '!' WHERE id = 2;
SELECT 'in-tx', inet_server_port(), count(*) FROM {t};
COMMIT;
BEGIN;
INSERT INTO {t} VALUES (3, 'three');
ROLLBACK;
""")
    try:
        out = psql("-f", str(script)).stdout.splitlines()
        assert f"in-tx|{PRIMARY_PORT}|2" in out
        # (A read right after COMMIT may go to the replica before it replayed the commit:
        # read_your_writes is off by default, so the data is checked on the primary itself.)
        assert primary_scalar(f"SELECT string_agg(v, ',' ORDER BY id) FROM {t}") == "one,two!"
    finally:
        drop_table(t)


def test_script_error_in_transaction_rolls_back(tmp_path):
    t = unique("compat_psql_err")
    script = tmp_path / "script.sql"
    script.write_text(f"""
CREATE TABLE {t} (id int primary key);
BEGIN;
INSERT INTO {t} VALUES (1);
INSERT INTO {t} VALUES (1);
INSERT INTO {t} VALUES (2);
COMMIT;
""")
    try:
        p = subprocess.run(["psql", "-X", "-At", "-f", str(script)], env=psql_env(), capture_output=True,
                           text=True, timeout=60)
        assert "duplicate key value violates unique constraint" in p.stderr
        assert "current transaction is aborted" in p.stderr
        assert "ROLLBACK" in p.stdout  # COMMIT of a failed transaction answers ROLLBACK
        assert primary_scalar(f"SELECT count(*) FROM {t}") == 0
    finally:
        drop_table(t)
