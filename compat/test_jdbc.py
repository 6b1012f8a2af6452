"""pgJDBC through pgsplit: java/CompatJdbc.java is compiled and run once; each of its PASS/FAIL lines is a test."""

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import HOST, PASSWORD, PRIMARY_PORT, PROXY_PORT, REPLICA_PORT, USER

CHECKS = [
    "connect_and_read_on_replica",
    "target_server_type_primary_connects",
    "autocommit_off_transaction_on_primary",
    "readonly_autocommit_off_reads_on_replica",
    "server_prepared_statement_past_threshold",
    "batch_execute",
    "query_timeout_cancels_and_connection_works",
    "fetch_size_cursor_autocommit_off",
    "cached_statement_after_alter_table",
]

SOURCE = Path(__file__).resolve().parent / "java" / "CompatJdbc.java"


def find_jar() -> str | None:
    if os.environ.get("PGJDBC_JAR"):
        return os.environ["PGJDBC_JAR"]
    for pattern in ("/usr/share/java/postgresql.jar", "/usr/share/java/postgresql-*.jar"):
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[-1]
    return None


@pytest.fixture(scope="module")
def jdbc_results(tmp_path_factory, proxy):
    jar = find_jar()
    if not jar or not shutil.which("javac"):
        pytest.fail("pgJDBC jar or javac missing (compat/run installs libpostgresql-jdbc-java and a JDK)")
    out = tmp_path_factory.mktemp("jdbc")
    c = subprocess.run(["javac", "-cp", jar, "-d", str(out), str(SOURCE)], capture_output=True, text=True,
                       timeout=180)
    assert c.returncode == 0, f"javac failed:\n{c.stdout}\n{c.stderr}"
    r = subprocess.run(["java", "-cp", f"{out}{os.pathsep}{jar}", "CompatJdbc", HOST, str(PROXY_PORT),
                        str(PRIMARY_PORT), str(REPLICA_PORT), USER, PASSWORD],
                       capture_output=True, text=True, timeout=240)
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("PASS "):
            results[line[5:].strip()] = None
        elif line.startswith("FAIL "):
            name, _, why = line[5:].partition(": ")
            results[name.strip()] = why
    results["__output__"] = f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}"
    return results


@pytest.mark.parametrize("check", CHECKS)
def test_jdbc(jdbc_results, check):
    if check not in jdbc_results:
        pytest.fail(f"the Java program did not report {check}:\n{jdbc_results['__output__']}")
    why = jdbc_results[check]
    assert why is None, f"{check}: {why}"
