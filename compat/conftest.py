"""Fixtures of the real-client compatibility suite.

Every test talks to pgsplit with a real client, and proves where a statement ran from the backends
themselves: ``inet_server_port()`` / ``pg_is_in_recovery()`` inside the statement, data read directly
from the primary, or the servers' own statement logs (``log_statement = all``).

Environment (all optional):
  PGSPLIT_BIN            a built pgsplit binary (default: .build-compat/debug/pgsplit in the repo)
  COMPAT_PAIR_DIR        folder of the primary + replica pair (default: var/test in the repo)
  COMPAT_PRIMARY_PORT    primary's port (default 25432)
  COMPAT_REPLICA_PORT    replica's port (default 25433)
  COMPAT_PROXY_PORT      port pgsplit listens on (default 26540)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parent.parent
PAIR_DIR = Path(os.environ.get("COMPAT_PAIR_DIR", REPO / "var" / "test"))
PRIMARY_PORT = int(os.environ.get("COMPAT_PRIMARY_PORT", "25432"))
REPLICA_PORT = int(os.environ.get("COMPAT_REPLICA_PORT", "25433"))
PROXY_PORT = int(os.environ.get("COMPAT_PROXY_PORT", "26540"))
PGSPLIT_BIN = Path(os.environ.get("PGSPLIT_BIN", REPO / ".build-compat" / "debug" / "pgsplit"))
HOST = "127.0.0.1"

USER = "alice"
PASSWORD = "alice-secret"
USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}


def unique(prefix: str) -> str:
    """A name no earlier run used: tables survive between runs on the shared pair."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def proxy_dsn(user: str = USER, password: str | None = None, **extra) -> str:
    password = USERS.get(user, "") if password is None else password
    parts = [f"host={HOST}", f"port={PROXY_PORT}", "dbname=app", f"user={user}", f"password={password}",
             "application_name=compat", "sslmode=disable"]
    parts += [f"{k}={v}" for k, v in extra.items()]
    return " ".join(parts)


def primary_dsn() -> str:
    return f"host={HOST} port={PRIMARY_PORT} dbname=app user=app_rw password=app_rw sslmode=disable"


def replica_dsn() -> str:
    return f"host={HOST} port={REPLICA_PORT} dbname=app user=app_ro password=app_ro sslmode=disable"


def psql_env() -> dict:
    env = dict(os.environ)
    env.update(PGHOST=HOST, PGPORT=str(PROXY_PORT), PGDATABASE="app", PGUSER=USER, PGPASSWORD=PASSWORD,
               PGSSLMODE="disable", PGAPPNAME="compat", PGCONNECT_TIMEOUT="10")
    for k in ("PGSERVICE", "PGOPTIONS", "PSQLRC"):
        env.pop(k, None)
    return env


# --------------------------------------------------------------------------------------------
# Direct connections to the backends: the ground truth.


def direct_primary() -> psycopg.Connection:
    return psycopg.connect(primary_dsn(), autocommit=True)


def direct_replica() -> psycopg.Connection:
    return psycopg.connect(replica_dsn(), autocommit=True)


def primary_scalar(sql: str, params=None):
    with direct_primary() as c:
        row = c.execute(sql, params).fetchone()
        return None if row is None else row[0]


def wait_replay(limit_s: float = 60.0) -> None:
    """Block until the replica has replayed everything the primary has written so far.

    A synchronisation step (the replica is asynchronous), not an assertion on speed."""
    with direct_primary() as p:
        lsn = p.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    deadline = time.monotonic() + limit_s
    with direct_replica() as r:
        while True:
            done = r.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0]
            if done:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"replica never replayed the primary's WAL up to {lsn}")
            time.sleep(0.02)


def drop_table(name: str) -> None:
    with direct_primary() as p:
        p.execute(f"DROP TABLE IF EXISTS {name}")


# --------------------------------------------------------------------------------------------
# The servers' statement logs.


class ServerLogs:
    """Reads what each server logged after a mark: which server ran a tagged statement."""

    files = {"primary": PAIR_DIR / "primary.log", "replica": PAIR_DIR / "replica.log"}

    def mark(self) -> dict:
        return {name: (path.stat().st_size if path.exists() else 0) for name, path in self.files.items()}

    def since(self, mark: dict, server: str) -> str:
        path = self.files[server]
        with open(path, "rb") as f:
            f.seek(mark[server])
            return f.read().decode("utf-8", "replace")

    @staticmethod
    def entries(text: str) -> list[str]:
        """Log entries: a line starting with a timestamp opens one; other lines continue it
        (a statement with newlines is logged over several lines)."""
        out: list[str] = []
        for line in text.splitlines():
            if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) or not out:
                out.append(line)
            else:
                out[-1] += "\n" + line
        return out

    def servers_with(self, tag: str, mark: dict) -> set[str]:
        """Servers that logged a statement (simple protocol) or an execute (extended) carrying ``tag``."""
        found = set()
        for server in self.files:
            for entry in self.entries(self.since(mark, server)):
                if tag in entry and ("statement: " in entry or "execute " in entry):
                    found.add(server)
        return found


@pytest.fixture(scope="session")
def server_logs() -> ServerLogs:
    for server, path in ServerLogs.files.items():
        if not path.exists():
            pytest.fail(f"the {server}'s statement log {path} is missing: is the pair running?")
    return ServerLogs()


# --------------------------------------------------------------------------------------------
# pgsplit itself.


class Proxy:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.config = workdir / "pgsplit.conf"
        self.users = workdir / "users.txt"
        self.log_path = workdir / "pgsplit.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.users.write_text("".join(f'"{u}" "{p}"\n' for u, p in USERS.items()))
        self.config.write_text(
            "[pgsplit]\n"
            f"listen = {HOST}:{PROXY_PORT}\n"
            "auth_type = scram-sha-256\n"
            "auth_file = users.txt\n"
            "log_routing = on\n"
            # These tests check where each statement runs, reading right after writing; the
            # read-your-writes default (lsn) would send those reads to the primary.
            "read_your_writes = off\n"
            "\n"
            "[database app]\n"
            f"main      = host={HOST} port={REPLICA_PORT} dbname=app user=app_ro password=app_ro\n"
            f"writeable = host={HOST} port={PRIMARY_PORT} user=app_rw password=app_rw\n")

    def start(self) -> None:
        if not PGSPLIT_BIN.exists():
            pytest.exit(f"pgsplit binary {PGSPLIT_BIN} is missing (build it or set PGSPLIT_BIN)", 3)
        with socket.socket() as s:
            if s.connect_ex((HOST, PROXY_PORT)) == 0:
                pytest.exit(f"port {PROXY_PORT} is already taken; set COMPAT_PROXY_PORT", 3)
        self.starts += 1
        log = open(self.log_path, "ab")
        log.write(f"\n===== compat: start #{self.starts} =====\n".encode())
        log.flush()
        self.proc = subprocess.Popen([str(PGSPLIT_BIN), "--config", str(self.config)], cwd=self.workdir,
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.exit(f"pgsplit exited at start with {self.proc.returncode}:\n{self.log_tail()}", 3)
            with socket.socket() as s:
                if s.connect_ex((HOST, PROXY_PORT)) == 0:
                    return
            time.sleep(0.05)
        pytest.exit(f"pgsplit did not listen on {PROXY_PORT}:\n{self.log_tail()}", 3)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def proxy(tmp_path_factory) -> Proxy:
    p = Proxy(tmp_path_factory.mktemp("pgsplit"))
    p.start()
    yield p
    p.stop()
    keep = os.environ.get("COMPAT_KEEP_LOG")
    if keep:
        shutil.copy(p.log_path, keep)


@pytest.fixture(autouse=True)
def proxy_watch(proxy, request):
    """Before a test: pgsplit runs (restarted if an earlier test killed it). After: it still runs."""
    if not proxy.alive():
        proxy.start()
    start = proxy.log_size()
    yield
    if not proxy.alive():
        code = proxy.proc.returncode
        pytest.fail(f"pgsplit exited (status {code}) during {request.node.name}; its log:\n"
                    + proxy.log_since(start)[-4000:], pytrace=False)


@pytest.fixture
def proxy_log(proxy):
    """The proxy's log written during this test (for diagnosis only; never used as proof)."""
    start = proxy.log_size()
    return lambda: proxy.log_since(start)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the proxy's log to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and "proxy" in item.funcargs:
        p: Proxy = item.funcargs["proxy"]
        report.sections.append(("pgsplit log (tail)", p.log_tail(30)))
