#!/usr/bin/env python3
"""pgsplit side-by-side benchmark: direct, PgBouncer (session and transaction), Pgpool-II, pgsplit.

Started by bench/run, which installs the packages and builds pgsplit first. This file starts the
PostgreSQL pair (or reuses it), the proxies, runs pgbench against every target with the targets
interleaved inside each round, measures proxy CPU and idle-client memory, checks where statements
ran, and writes bench/results/latest.{md,json,png}.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
PGBIN = "/usr/lib/postgresql/15/bin"
OS_USER = "pgsplit"
CLIENT_USER = "app_rw"
CLIENT_PASSWORD = "app_rw"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes we start, and their cleanup.

class Stopped(Exception):
    pass


def _on_signal(signum, _frame):
    raise Stopped(f"signal {signum}")


def as_server_user():
    """Keyword arguments for Popen so that a server runs as the ordinary OS user when we are root."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(OS_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def chown_to_server_user(*paths):
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam(OS_USER)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def process_table():
    """pid -> (ppid, utime+stime, cutime+cstime) in clock ticks, for every process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        # rest[0] is field 3 (state); utime is field 14 -> rest[11]
        table[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14]))
    return table


def tree_pids(root, table=None):
    table = table or process_table()
    if root not in table:
        return []
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(root):
    """CPU of a process tree: every live member's own time plus the root's reaped children."""
    table = process_table()
    if root not in table:
        return None
    ticks = table[root][2]
    for pid in tree_pids(root, table):
        ticks += table[pid][1]
    return ticks / CLK_TCK


def memory_kib(root):
    """(RSS, PSS) in KiB summed over a process tree."""
    rss = pss = 0
    for pid in tree_pids(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss += int(line.split()[1])
            except OSError:
                pass
    return rss, pss


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as servers do: connections in TIME_WAIT do not block a new listener, a listener does
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def wait_port(port, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def run(cmd, timeout=120, env=None, check=False, **kw):
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env, **kw)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{cmd[0]} timed out after {timeout}s") from e
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-400:]}")
    return result


# ---------------------------------------------------------------------------------------------
# The PostgreSQL pair.

class Pair:
    MARK = "# --- bench settings ---"

    def __init__(self, vardir, primary, replica):
        self.dir = os.path.join(vardir, "pair")
        self.primary = primary
        self.replica = replica
        self.sock = os.path.join(self.dir, "sock")
        self.started_by_us = False
        self.script = os.path.join(ROOT, "scripts", "pg-pair.sh")

    def mark(self):
        # bench/run's trap stops the pair from this mark should the harness die without cleaning up
        self.started_by_us = True
        os.makedirs(os.path.join(os.path.dirname(self.dir), "run"), exist_ok=True)
        open(os.path.join(os.path.dirname(self.dir), "run", "pair-started"), "w").close()

    def running(self):
        return run(["bash", self.script, "status", self.dir], timeout=30).returncode == 0

    def start(self):
        if self.running():
            log(f"reusing the PostgreSQL pair in {self.dir}")
        else:
            for port in (self.primary, self.replica):
                if not port_free(port):
                    raise RuntimeError(f"port {port} is taken by another program; choose --pair-ports")
            self.mark()
        run(["bash", self.script, "start", self.dir, str(self.primary), str(self.replica)], timeout=600, check=True)
        self.tune()

    def tune(self):
        """Room for every target's connections; no per-statement logging while measuring."""
        changed = False
        for name in ("replica", "primary"):  # a standby needs max_connections >= the primary's
            conf = os.path.join(self.dir, name, "postgresql.conf")
            with open(conf) as f:
                text = f.read()
            if self.MARK in text:
                continue
            with open(conf, "a") as f:
                f.write(f"\n{self.MARK}\nmax_connections = 700\nlog_statement = 'none'\n"
                        "log_connections = off\nlog_disconnections = off\n")
            changed = True
        if changed:
            log("raising max_connections and turning statement logging off on the bench pair (restart)")
            for name in ("replica", "primary"):
                run([f"{PGBIN}/pg_ctl", "restart", "-w", "-t", "120", "-m", "fast", "-D",
                     os.path.join(self.dir, name), "-l", os.path.join(self.dir, f"{name}.log")],
                    timeout=180, check=True, **as_server_user())
            self.mark()
            run(["bash", self.script, "start", self.dir, str(self.primary), str(self.replica)], timeout=600, check=True)

    def stop(self):
        if self.started_by_us:
            log("stopping the PostgreSQL pair")
            run(["bash", self.script, "stop", self.dir], timeout=180)
            try:
                os.unlink(os.path.join(os.path.dirname(self.dir), "run", "pair-started"))
            except OSError:
                pass

    def sql(self, port, query, db="postgres"):
        r = run([f"{PGBIN}/psql", "-X", "-q", "-At", "-h", self.sock, "-p", str(port), "-U", "postgres",
                 "-d", db, "-c", query], timeout=60, check=True)
        return r.stdout.strip()

    def xacts(self, port):
        return int(self.sql(port, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'app'"))

    def wait_replica_caught_up(self, timeout=120):
        lsn = self.sql(self.primary, "SELECT pg_current_wal_lsn()")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sql(self.replica, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn") == "t":
                return
            time.sleep(0.2)
        raise RuntimeError("the replica did not catch up")

    def init_pgbench(self, scale):
        have = self.sql(self.primary, "SELECT to_regclass('public.pgbench_branches') IS NOT NULL", db="app")
        if have == "t":
            rows = self.sql(self.primary, "SELECT count(*) FROM pgbench_branches", db="app")
            if rows == str(scale):
                log(f"pgbench tables present (scale {scale})")
                return
        log(f"pgbench -i -s {scale} on the primary")
        run(["pgbench", "-i", "-q", "-s", str(scale), "-h", "127.0.0.1", "-p", str(self.primary),
             "-U", CLIENT_USER, "app"], timeout=900, env={"PGPASSWORD": CLIENT_PASSWORD}, check=True)
        self.wait_replica_caught_up()


# ---------------------------------------------------------------------------------------------
# Targets.

@dataclass
class Target:
    key: str
    label: str
    port: int = 0           # 0 for direct
    read_db: str = "app"
    write_db: str = "app"
    proc: subprocess.Popen = None
    error: str = ""         # why it is not running
    notes: list = field(default_factory=list)
    restarts: int = 0

    @property
    def is_proxy(self):
        return self.key != "direct"

    def alive(self):
        return not self.is_proxy or (self.proc is not None and self.proc.poll() is None)


class Servers:
    """Starts, watches and stops the proxies."""

    def __init__(self, args, pair):
        self.args = args
        self.pair = pair
        self.dir = os.path.join(args.vardir, "proxies")
        self.piddir = os.path.join(args.vardir, "run")
        os.makedirs(self.dir, exist_ok=True)
        os.makedirs(self.piddir, exist_ok=True)
        chown_to_server_user(self.dir)
        base = args.proxy_base_port
        self.targets = [
            Target("direct", "direct"),
            Target("pgbouncer-session", "PgBouncer session", base, read_db="app_ro"),
            Target("pgbouncer-tx", "PgBouncer transaction", base + 1, read_db="app_ro"),
            Target("pgpool", "Pgpool-II", base + 2),
            Target("pgsplit", "pgsplit", base + 4),
            # Two processes sharing one port (so_reuseport), one event loop each: the way to use more
            # cores than one process's loops (on a 2-core machine it shows the cost, not a gain).
            Target("pgsplit-reuseport", "pgsplit ×2 so_reuseport", base + 5),
        ]
        self.pgpool_pcp_port = base + 3
        self.stop_leftovers()

    def by_key(self, key):
        return next(t for t in self.targets if t.key == key)

    # -- pid files let a later run (or bench/run's trap) stop what an interrupted run left behind
    def pidfile(self, target):
        return os.path.join(self.piddir, f"{target.key}.pid")

    def stop_leftovers(self):
        for target in self.targets[1:]:
            path = self.pidfile(target)
            if not os.path.exists(path):
                continue
            try:
                pid = int(open(path).read().split()[0])
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
                if self.dir in cmdline:
                    log(f"stopping a {target.label} left over by an earlier run (pid {pid})")
                    self.kill_tree(pid, signal.SIGTERM if target.key != "pgpool" else signal.SIGINT)
            except (OSError, ValueError):
                pass
            os.unlink(path)

    @staticmethod
    def kill_tree(pid, sig, timeout=15):
        pids = tree_pids(pid)
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in pids):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.1)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- configuration files
    def write(self, name, text, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        chown_to_server_user(path)
        return path

    def pgbouncer_config(self, target, mode):
        p, r = self.pair.primary, self.pair.replica
        self.write("userlist.txt", f'"{CLIENT_USER}" "{CLIENT_PASSWORD}"\n')
        return self.write(f"{target.key}.ini", f"""\
[databases]
app = host=127.0.0.1 port={p} dbname=app
app_ro = host=127.0.0.1 port={r} dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {target.port}
unix_socket_dir =
auth_type = md5
auth_file = {self.dir}/userlist.txt
pool_mode = {mode}
default_pool_size = 80
max_client_conn = 12000
max_db_connections = 0
server_reset_query = DISCARD ALL
ignore_startup_parameters = extra_float_digits
logfile = {self.dir}/{target.key}.log
pidfile = {self.dir}/{target.key}.pidfile
log_connections = 0
log_disconnections = 0
stats_period = 60
""")

    def pgpool_config(self, target):
        p, r = self.pair.primary, self.pair.replica
        pdir = os.path.join(self.dir, "pgpool")
        os.makedirs(os.path.join(pdir, "sock"), exist_ok=True)
        chown_to_server_user(pdir, os.path.join(pdir, "sock"))
        # The servers keep SCRAM verifiers, so Pgpool-II needs the password itself (TEXT prefix) to log in
        # to both backends; it still asks the client for md5 (pool_hba.conf).
        self.write("pgpool/pool_passwd", f"{CLIENT_USER}:TEXT{CLIENT_PASSWORD}\n")
        self.write("pgpool/pool_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 md5\n")
        self.write("pgpool/pcp.conf", f"bench:{hashlib.md5(b'bench').hexdigest()}\n")
        return self.write("pgpool/pgpool.conf", f"""\
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = {target.port}
socket_dir = '{pdir}/sock'
pcp_listen_addresses = '127.0.0.1'
pcp_port = {self.pgpool_pcp_port}
pcp_socket_dir = '{pdir}/sock'
wd_ipc_socket_dir = '{pdir}/sock'
backend_hostname0 = '127.0.0.1'
backend_port0 = {p}
backend_weight0 = 0
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_application_name0 = 'primary'
backend_hostname1 = '127.0.0.1'
backend_port1 = {r}
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
backend_application_name1 = 'replica'
enable_pool_hba = on
pool_passwd = 'pool_passwd'
allow_clear_text_frontend_auth = off
num_init_children = {max(72, self.args.max_clients + 8)}
max_pool = 1
reserved_connections = 0
listen_backlog_multiplier = 2
child_life_time = 0
child_max_connections = 0
connection_life_time = 0
client_idle_limit = 0
connection_cache = on
load_balance_mode = on
statement_level_load_balance = {self.args.pgpool_statement_lb}
disable_load_balance_on_write = 'transaction'
sr_check_period = 0
sr_check_user = '{CLIENT_USER}'
sr_check_password = '{CLIENT_PASSWORD}'
sr_check_database = 'app'
health_check_period = 0
failover_on_backend_error = off
failover_command = ''
use_watchdog = off
memory_cache_enabled = off
log_destination = 'stderr'
log_min_messages = warning
log_connections = off
log_statement = off
log_per_node_statement = off
pid_file_name = '{pdir}/pgpool.pid'
logdir = '{pdir}'
""")

    def pgsplit_config(self, target, name="pgsplit.conf", extra=""):
        p, r = self.pair.primary, self.pair.replica
        self.write("pgsplit-users.txt", f'"{CLIENT_USER}" "{CLIENT_PASSWORD}"\n')
        auth_file = "" if self.args.pgsplit_auth == "trust" else f"auth_file = {self.dir}/pgsplit-users.txt\n"
        return self.write(name, f"""\
[pgsplit]
listen = 127.0.0.1:{target.port}
auth_type = {self.args.pgsplit_auth}
{auth_file}max_client_conn = 12000
{extra}
; No TLS to the servers, as PgBouncer and Pgpool-II run here (server_tls_sslmode = disable).
[database app]
main = host=127.0.0.1 port={r} dbname=app user=app_ro password=app_ro sslmode=disable
writeable = host=127.0.0.1 port={p} user=app_rw password=app_rw sslmode=disable
""")

    def command(self, target):
        if target.key.startswith("pgbouncer"):
            mode = "session" if target.key == "pgbouncer-session" else "transaction"
            return ["pgbouncer", self.pgbouncer_config(target, mode)]
        if target.key == "pgpool":
            conf = self.pgpool_config(target)
            pdir = os.path.dirname(conf)
            return ["pgpool", "-n", "-D", "-f", conf, "-a", os.path.join(pdir, "pool_hba.conf"),
                    "-F", os.path.join(pdir, "pcp.conf")]
        if target.key == "pgsplit":
            if not self.args.pgsplit_bin or not os.access(self.args.pgsplit_bin, os.X_OK):
                raise RuntimeError(f"no pgsplit binary ({self.args.pgsplit_bin or 'the build failed'})")
            return [self.args.pgsplit_bin, "--config", self.pgsplit_config(target)]
        if target.key == "pgsplit-reuseport":
            if not self.args.pgsplit_bin or not os.access(self.args.pgsplit_bin, os.X_OK):
                raise RuntimeError(f"no pgsplit binary ({self.args.pgsplit_bin or 'the build failed'})")
            conf = self.pgsplit_config(target, "pgsplit-reuseport.conf", "workers = 1\nso_reuseport = on\n")
            # A shell parent, so the CPU and memory of both processes count as one target's.
            script = ('trap \'kill $a $b 2>/dev/null\' TERM INT; "$0" --config "$1" & a=$!; '
                      '"$0" --config "$1" & b=$!; wait')
            return ["bash", "-c", script, self.args.pgsplit_bin, conf]
        raise ValueError(target.key)

    def start(self, target):
        if not target.is_proxy:
            return True
        if target.key in self.args.skip:
            target.error = "skipped (--skip)"
            return False
        target.error = ""
        try:
            if not port_free(target.port):
                raise RuntimeError(f"port {target.port} is taken by another program")
            cmd = self.command(target)
            logfile = open(os.path.join(self.dir, f"{target.key}.out"), "a")
            chown_to_server_user(logfile.name)
            target.proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           cwd=self.dir, start_new_session=True, **as_server_user())
            with open(self.pidfile(target), "w") as f:
                f.write(f"{target.proc.pid}\n")
            if not wait_port(target.port, 30, target.proc):
                tail = open(logfile.name).read()[-600:].strip().replace("\n", " | ")
                raise RuntimeError(f"did not start listening: {tail or 'no output'}")
            # one real login proves it can reach its backends
            probe = self.probe(target)
            if probe:
                raise RuntimeError(f"a test query failed: {probe}")
            log(f"{target.label} listening on 127.0.0.1:{target.port} (pid {target.proc.pid})")
            return True
        except Exception as e:  # noqa: BLE001 - a target that cannot start is reported, not fatal
            target.error = str(e)[:300]
            log(f"{target.label}: {target.error}")
            self.stop(target)
            return False

    def probe(self, target):
        for db in {target.read_db, target.write_db}:
            r = run(["psql", "-X", "-At", "-h", "127.0.0.1", "-p", str(target.port), "-U", CLIENT_USER, "-d", db,
                     "-c", "SELECT count(*) FROM pgbench_branches"], timeout=30,
                    env={"PGPASSWORD": CLIENT_PASSWORD, "PGCONNECT_TIMEOUT": "10"})
            if r.returncode != 0:
                return (r.stderr.strip() or r.stdout.strip())[-300:]
        return ""

    def ensure(self, target):
        """Restart a proxy that died since the last run (at most 3 times); False if it is down."""
        if target.alive():
            return True
        if target.proc is None and target.error:
            return False
        if target.restarts >= 3:
            target.error = target.error or "died; restarted 3 times already"
            return False
        code = target.proc.poll() if target.proc else None
        target.restarts += 1
        target.notes.append(f"died (exit status {code}); restarted")
        log(f"{target.label} is not running (exit status {code}); restarting")
        self.stop(target)
        return self.start(target)

    def stop(self, target):
        if target.proc is None:
            return
        sig = signal.SIGINT if target.key == "pgpool" else signal.SIGTERM
        self.kill_tree(target.proc.pid, sig)
        try:
            target.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        target.proc = None
        try:
            os.unlink(self.pidfile(target))
        except OSError:
            pass

    def stop_all(self):
        for target in self.targets:
            if target.proc is not None:
                log(f"stopping {target.label}")
                self.stop(target)


# ---------------------------------------------------------------------------------------------
# Workloads.

@dataclass
class Case:
    key: str
    label: str
    kind: str      # "read": direct = replica, PgBouncer -> replica; "write": direct = primary
    clients: int
    args: list


def cases(quick, scale):
    read_sql = os.path.join(BENCH, "sql", "read.sql")
    write_sql = os.path.join(BENCH, "sql", "write.sql")
    out = []
    for clients in (1, 16, 64):
        for mode in ("simple", "extended", "prepared"):
            out.append(Case(f"select-{mode}-c{clients}", f"select-only {mode}, {clients} cl", "read", clients,
                            ["-S", "-M", mode]))
    for mode in ("simple", "prepared"):
        out.append(Case(f"tpcb-{mode}-c8", f"tpcb-like {mode}, 8 cl", "write", 8, ["-M", mode]))
    for mode in ("simple", "prepared"):
        out.append(Case(f"mixed-{mode}-c8", f"90% read / 10% write {mode}, 8 cl", "write", 8,
                        ["-M", mode, "-D", f"scale={scale}", "-f", f"{read_sql}@9", "-f", f"{write_sql}@1"]))
    out.append(Case("churn-select-c8", "connection churn -C select-only, 8 cl", "read", 8, ["-S", "-C", "-M", "simple"]))
    if quick:
        keep = {"select-simple-c1", "select-simple-c16", "select-prepared-c16", "tpcb-simple-c8",
                "mixed-simple-c8", "churn-select-c8"}
        out = [c for c in out if c.key in keep]
    return out


PGBENCH_PATTERNS = {
    "tps": re.compile(r"^tps = ([0-9.]+)", re.M),
    "latency_ms": re.compile(r"^latency average = ([0-9.]+) ms", re.M),
    "processed": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "failed": re.compile(r"^number of failed transactions: (\d+)", re.M),
}


def pgbench(target, case, pair, duration):
    """One timed pgbench run; returns a result dict (ok False with a reason on failure)."""
    if target.is_proxy:
        port = target.port
        db = target.read_db if case.kind == "read" else target.write_db
    else:
        port = pair.replica if case.kind == "read" else pair.primary
        db = "app"
    jobs = min(case.clients, os.cpu_count() or 2)
    cmd = ["pgbench", "-n", "-T", str(duration), "-c", str(case.clients), "-j", str(jobs), *case.args,
           "-h", "127.0.0.1", "-p", str(port), "-U", CLIENT_USER, db]
    cpu0 = cpu_seconds(target.proc.pid) if target.is_proxy else None
    started = time.monotonic()
    try:
        r = run(cmd, timeout=duration + 60, env={"PGPASSWORD": CLIENT_PASSWORD, "PGCONNECT_TIMEOUT": "10"})
    except RuntimeError as e:
        return {"ok": False, "reason": str(e)}
    wall = time.monotonic() - started
    cpu1 = cpu_seconds(target.proc.pid) if target.is_proxy and target.proc else None
    out = r.stdout + "\n" + r.stderr
    res = {"ok": False, "wall_s": round(wall, 2)}
    for name, pattern in PGBENCH_PATTERNS.items():
        m = pattern.search(out)
        if m:
            res[name] = float(m.group(1)) if name in ("tps", "latency_ms") else int(m.group(1))
    if r.returncode != 0 or "tps" not in res or not res.get("processed"):
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        interesting = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower() or "abort" in ln.lower()]
        reason = (interesting or lines or [f"exit status {r.returncode}"])[0]
        res["reason"] = re.sub(r"^pgbench: ", "", reason)[:200]
        return res
    res["ok"] = True
    if res.get("failed"):
        res["note"] = f"{res['failed']} failed transactions"
    if cpu0 is not None and cpu1 is not None:
        res["cpu_s"] = round(cpu1 - cpu0, 3)
        res["cpu_us_per_tx"] = round((cpu1 - cpu0) * 1e6 / res["processed"], 2)
    return res


# ---------------------------------------------------------------------------------------------
# Idle clients and placement.

def idle_memory(servers, counts, timeout_s):
    rows = []
    script = os.path.join(BENCH, "lib", "idle_clients.py")
    # One proxy at a time, the others stopped, so no proxy's idle server connections take the
    # backends' connection slots from the one being measured.
    for target in servers.targets:
        servers.stop(target)
    for target in servers.targets:
        if not target.is_proxy:
            continue
        if not target.error:
            servers.start(target)
        for count in counts:
            row = {"target": target.key, "wanted": count}
            rows.append(row)
            if not servers.ensure(target):
                row["error"] = target.error or "not running"
                continue
            time.sleep(1)
            base_rss, base_pss = memory_kib(target.proc.pid)
            row.update(base_rss_kib=base_rss, base_pss_kib=base_pss)
            proc = subprocess.Popen([sys.executable, script, "127.0.0.1", str(target.port), CLIENT_USER,
                                     CLIENT_PASSWORD, "app", str(count), "--timeout", "10", "--hold", str(timeout_s)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                line = ""
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    line = proc.stdout.readline()
                    if not line or line.startswith("READY"):
                        break
                m = re.match(r"READY reached=(\d+) failed=(\d+) elapsed=([0-9.]+) first_error=(.*)", line.strip())
                if not m:
                    row["error"] = "idle-client script failed: " + proc.stderr.read()[-300:]
                    continue
                row["reached"], row["failed"], row["login_s"] = int(m.group(1)), int(m.group(2)), float(m.group(3))
                if m.group(4) != "-":
                    row["first_error"] = m.group(4)
                time.sleep(2)  # let the proxy settle
                rss, pss = memory_kib(target.proc.pid) if target.alive() else (0, 0)
                row.update(rss_kib=rss, pss_kib=pss)
                if row["reached"]:
                    row["per_client_kib"] = round((rss - base_rss) / row["reached"], 2)
                    row["per_client_pss_kib"] = round((pss - base_pss) / row["reached"], 2)
                if not target.alive():
                    row["error"] = "the proxy died while clients were connected"
            finally:
                try:
                    proc.stdin.write("done\n")
                    proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log(f"idle clients {target.label}: wanted {count}, reached {row.get('reached', 0)}, "
                f"RSS {row.get('rss_kib', 0) / 1024:.1f} MiB")
            time.sleep(2)  # let the proxy drop the closed connections
        servers.stop(target)
    return rows


def settle_xacts(pair, port, timeout=15):
    """pg_stat_database numbers reach shared memory up to several seconds late: wait until steady."""
    last, steady = None, 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = pair.xacts(port)
        steady = steady + 1 if now == last else 0
        if steady >= 3:
            return now
        last = now
        time.sleep(1)
    return last


def placement(servers, pair):
    """Counts committed transactions on each server around runs through each splitting proxy."""
    rows = []
    checks = [("read", "select-only, 4 clients × 250, simple + extended + prepared", 3000,
               [["-S", "-M", m, "-c", "4", "-j", "2", "-t", "250"] for m in ("simple", "extended", "prepared")]),
              ("write", "tpcb-like, 2 clients × 100 (BEGIN … END)", 200,
               [["-M", "simple", "-c", "2", "-j", "2", "-t", "100"]])]
    for key in ("pgsplit", "pgpool"):
        target = servers.by_key(key)
        for kind, label, expected, runs in checks:
            row = {"target": key, "kind": kind, "workload": label, "transactions": expected}
            rows.append(row)
            if not servers.ensure(target):
                row["error"] = target.error or "not running"
                continue
            # A backend flushes its statistics when it exits, but an idle one only every few seconds: a
            # proxy that keeps its backend connections open would report late. So the proxy is restarted
            # before and stopped after the measured runs, which closes its backend connections.
            servers.stop(target)
            if not servers.start(target):
                row["error"] = target.error or "did not restart"
                continue
            p0, r0 = settle_xacts(pair, pair.primary), settle_xacts(pair, pair.replica)
            failed = ""
            for args in runs:
                r = run(["pgbench", "-n", *args, "-h", "127.0.0.1", "-p", str(target.port), "-U", CLIENT_USER, "app"],
                        timeout=300, env={"PGPASSWORD": CLIENT_PASSWORD, "PGCONNECT_TIMEOUT": "10"})
                if r.returncode != 0:
                    failed = (r.stderr.strip().splitlines() or ["pgbench failed"])[-1][:200]
                    break
            servers.stop(target)
            time.sleep(1)
            p1, r1 = settle_xacts(pair, pair.primary), settle_xacts(pair, pair.replica)
            servers.start(target)
            row.update(primary=p1 - p0, replica=r1 - r0)
            if failed:
                row["error"] = failed
                row["verdict"] = "FAIL"
            elif kind == "read":
                ok = row["replica"] >= 0.98 * expected and row["primary"] <= max(20, 0.02 * expected)
                row["verdict"] = "PASS" if ok else "FAIL"
            else:
                row["verdict"] = "PASS" if row["primary"] >= expected else "FAIL"
            log(f"placement {key} {kind}: primary +{row['primary']}, replica +{row['replica']} -> {row['verdict']}")
    return rows


# ---------------------------------------------------------------------------------------------
# Classifier hook.

def classifier(quick):
    script = os.path.join(BENCH, "classifier")
    if not os.access(script, os.X_OK):
        return {"status": "missing", "text": "bench/classifier is not executable"}
    try:
        r = subprocess.run([script] + (["--quick"] if quick else []), capture_output=True, text=True, timeout=1800,
                           cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "text": "bench/classifier took over 30 minutes"}
    if r.returncode == 3:
        return {"status": "not provided", "text": r.stdout.strip() or r.stderr.strip()}
    if r.returncode != 0:
        return {"status": f"failed ({r.returncode})", "text": (r.stdout + r.stderr).strip()[-1500:]}
    return {"status": "ok", "text": r.stdout.strip()}


# ---------------------------------------------------------------------------------------------
# Report.

def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1048576:.1f} GiB RAM"
    except OSError:
        pass

    def version(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    commit = version(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(), "cpu": model, "kernel": platform.release(), "memory": mem,
        "postgres": version([f"{PGBIN}/postgres", "--version"]),
        "pgbouncer": version(["pgbouncer", "--version"]), "pgpool": version(["pgpool", "--version"]),
        "pgsplit_commit": commit + ("-dirty" if dirty else ""),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def relative_paths(text):
    """Results are committed: name files relative to the repository, not by this machine's paths."""
    return text.replace(ROOT + "/", "").replace(ROOT, ".")


def cell(text, limit=140):
    """Text made safe for one markdown table cell."""
    text = " ".join(str(text).split()).replace("|", "/")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def spread(values, fmt):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} ({fmt(min(values))}–{fmt(max(values))})"


def fmt_tps(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(v):
    return f"{v:.2f}"


def fmt_ms(v):
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def fmt_us(v):
    return f"{v:.1f}"


def target_desc(target, case):
    if target.key == "direct":
        return "direct → replica" if case.kind == "read" else "direct → primary"
    if target.key.startswith("pgbouncer"):
        if case.kind == "read":
            return f"{target.label} → replica"
        if case.key.startswith("mixed"):
            return f"{target.label} → primary only ¹"
        return f"{target.label} → primary"
    return f"{target.label} (splits)"


def summarize(results, case_list, targets):
    """Per case and target: lists over rounds of tps, latency, cpu, ratios (same-round)."""
    summary = {}
    for case in case_list:
        for target in targets:
            summary[(case.key, target.key)] = {"tps": [], "lat": [], "cpu": [], "vs_direct": [], "vs_pgb": [],
                                               "ok": 0, "runs": 0, "reasons": [], "notes": []}
    for rnd in results:
        for case in case_list:
            row = rnd.get(case.key, {})
            direct = row.get("direct", {})
            pgb = row.get("pgbouncer-session", {})
            for target in targets:
                res = row.get(target.key)
                if res is None:
                    continue
                s = summary[(case.key, target.key)]
                s["runs"] += 1
                if not res.get("ok"):
                    s["reasons"].append(res.get("reason", "failed"))
                    continue
                s["ok"] += 1
                s["tps"].append(res["tps"])
                s["lat"].append(res.get("latency_ms"))
                s["cpu"].append(res.get("cpu_us_per_tx"))
                if res.get("note"):
                    s["notes"].append(res["note"])
                if direct.get("ok"):
                    s["vs_direct"].append(res["tps"] / direct["tps"])
                if pgb.get("ok"):
                    s["vs_pgb"].append(res["tps"] / pgb["tps"])
    return summary


def write_report(args, info, case_list, servers, results, summary, memory, places, classifier_out, started, path_md):
    t = servers.targets
    lines = []
    lines.append("# pgsplit benchmark — latest run\n")
    lines.append(f"- date: {started:%Y-%m-%d %H:%M:%S %Z}".rstrip() + f" (took {info['elapsed_min']:.1f} min)")
    lines.append(f"- machine: {info['cores']} cores, {info['cpu']}, kernel {info['kernel']}, {info['memory']}; "
                 f"load average at the start {' '.join(info['loadavg'])}")
    lines.append(f"- software: {info['postgres']}; {info['pgbouncer']}; {info['pgpool']}; "
                 f"pgsplit at commit {info['pgsplit_commit']}")
    lines.append(f"- runs: {args.rounds} round(s) × {len(case_list)} workload(s) × {len(t)} targets, "
                 f"{args.duration} s each, targets interleaved inside each round; pgbench scale {args.scale}, "
                 f"client threads = min(clients, cores)")
    lines.append("- figures: median over rounds, (min–max) in brackets; ratios are taken inside each round "
                 "(same workload, adjacent runs) and then summarised")
    lines.append("- direct = the replica for read-only workloads, the primary for workloads that write; "
                 "PgBouncer cannot split, so it points at the replica for read-only and the primary for "
                 "writing workloads")
    lines.append("")
    down = [x for x in t if x.error]
    for x in down:
        lines.append(f"- **{x.label} did not run**: {cell(x.error, 600)}")
    for x in t:
        for n in x.notes:
            lines.append(f"- {x.label}: {cell(n, 300)}")
    if down or any(x.notes for x in t):
        lines.append("")

    lines.append("## Throughput and latency\n")
    lines.append("| workload | target | TPS | latency ms | × direct | × PgBouncer session | proxy CPU µs/tx ² | ok runs |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for case in case_list:
        for target in t:
            s = summary[(case.key, target.key)]
            desc = target_desc(target, case)
            if s["ok"] == 0:
                reasons = s["reasons"] or [target.error or "not run"]
                reason = "not running (see above)" if target.error and reasons[0] == target.error else cell(reasons[0])
                lines.append(f"| {case.label} | {desc} | **failed**: {reason} | | | | | 0/{s['runs']} |")
                continue
            ok = f"{s['ok']}/{s['runs']}"
            if s["reasons"]:
                ok += f" ({cell(s['reasons'][0], 80)})"
            if s["notes"]:
                ok += f" ⚠ {cell(s['notes'][0], 80)}"
            vs_d = "1.00" if target.key == "direct" else spread(s["vs_direct"], fmt_ratio)
            vs_p = "1.00" if target.key == "pgbouncer-session" else spread(s["vs_pgb"], fmt_ratio)
            cpu = "—" if not target.is_proxy else spread(s["cpu"], fmt_us)
            lines.append(f"| {case.label} | {desc} | {spread(s['tps'], fmt_tps)} | {spread(s['lat'], fmt_ms)} | "
                         f"{vs_d} | {vs_p} | {cpu} | {ok} |")
    lines.append("")
    lines.append("¹ PgBouncer cannot split: in the 90 % read / 10 % write workload every statement goes to the "
                 "primary, which the splitting proxies relieve.  ")
    lines.append("² CPU time (user + system) of the proxy's processes during the run (for Pgpool-II the parent "
                 "and all its children) divided by the transactions pgbench completed; µs per transaction = "
                 "ms per 1000 transactions. The resolution is 1/{} s per run.".format(CLK_TCK))
    lines.append("")

    lines.append("## Memory with idle clients\n")
    lines.append("Raw TCP clients that complete the startup handshake and md5 login, then sit idle. RSS/PSS summed "
                 "over the proxy's processes; per client = (with clients − before) / clients reached.\n")
    lines.append("| target | clients wanted | reached | RSS before MiB | RSS with clients MiB | KiB per client (RSS) | "
                 "KiB per client (PSS) | note |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for row in memory:
        label = servers.by_key(row["target"]).label
        if "reached" not in row:
            err = row.get("error", "")
            err = "not running (see above)" if err and err == servers.by_key(row["target"]).error else cell(err)
            lines.append(f"| {label} | {row['wanted']:,} | — | | | | | {err} |")
            continue
        note = row.get("error", "")
        if row["target"] == "pgpool":
            note = (note + "; " if note else "") + "one process per client: stops at num_init_children"
        if row.get("first_error") and row["reached"] < row["wanted"]:
            note = (note + " " if note else "") + f"first failure: {row['first_error']}"
        lines.append(f"| {label} | {row['wanted']:,} | {row['reached']:,} | {row['base_rss_kib'] / 1024:.1f} | "
                     f"{row['rss_kib'] / 1024:.1f} | {row.get('per_client_kib', 0):.1f} | "
                     f"{row.get('per_client_pss_kib', 0):.1f} | {cell(note)} |")
    lines.append("")

    lines.append("## Where statements ran\n")
    lines.append("`xact_commit + xact_rollback` of database app in `pg_stat_database` on each server, before and "
                 "after runs through the splitting proxies (steady readings; includes pgbench's own scale query). "
                 "Reads must land on the replica, transactions that write on the primary.\n")
    if not places:
        lines.append("not run (--no-placement, or the run stopped before it)\n")
    lines.append("| proxy | workload | transactions | Δ primary | Δ replica | verdict |")
    lines.append("|---|---|---:|---:|---:|---|")
    for row in places:
        label = servers.by_key(row["target"]).label
        verdict = row.get("verdict", "not run")
        if row.get("error"):
            err = row["error"]
            verdict += ": " + ("not running (see above)" if err == servers.by_key(row["target"]).error else cell(err))
        lines.append(f"| {label} | {row['workload']} | {row['transactions']:,} | {row.get('primary', '—')} | "
                     f"{row.get('replica', '—')} | {verdict} |")
    lines.append("")

    lines.append("## Classifier micro-benchmark\n")
    lines.append(f"status: {classifier_out['status']}\n")
    if classifier_out["text"]:
        lines.append("```\n" + classifier_out["text"] + "\n```")
    lines.append("")
    lines.append(f"Chart: `latest.png` (TPS as a ratio to direct). Raw numbers: `latest.json`.")
    with open(path_md, "w") as f:
        f.write(relative_paths("\n".join(lines) + "\n"))


def write_chart(case_list, servers, summary, info, started, path_png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed"
    proxies = [x for x in servers.targets if x.is_proxy and not x.error.startswith("skipped")]
    colors = {"pgbouncer-session": "#4c72b0", "pgbouncer-tx": "#8fb0d9", "pgpool": "#dd8452", "pgsplit": "#55a868",
              "pgsplit-reuseport": "#8fc99a"}
    fig, ax = plt.subplots(figsize=(max(10, 1.3 * len(case_list) + 3), 6))
    width = 0.8 / len(proxies)
    for i, target in enumerate(proxies):
        xs, meds, lo, hi, fails = [], [], [], [], []
        for j, case in enumerate(case_list):
            x = j - 0.4 + width * (i + 0.5)
            vals = summary[(case.key, target.key)]["vs_direct"]
            if vals:
                m = statistics.median(vals)
                xs.append(x)
                meds.append(m)
                lo.append(m - min(vals))
                hi.append(max(vals) - m)
            else:
                fails.append(x)
        ax.bar(xs, meds, width, yerr=[lo, hi], capsize=2, label=target.label, color=colors.get(target.key))
        if fails:
            ax.scatter(fails, [0.02] * len(fails), marker="x", color=colors.get(target.key), s=40)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(case_list)))
    ax.set_xticklabels([c.label.replace(", ", "\n") for c in case_list], fontsize=7)
    ax.set_ylabel("TPS ÷ direct TPS (same round)")
    ax.set_title(f"pgsplit bench {started:%Y-%m-%d %H:%M} — {info['cores']} cores, {info['cpu']}, "
                 f"kernel {info['kernel']}\nmedian over rounds, bars = min–max, × = failed", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path_png, dpi=110)
    plt.close(fig)
    return ""


# ---------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 s runs, 1 round, 6 workloads, fewer idle clients")
    parser.add_argument("--duration", type=int, help="seconds per pgbench run (default 10; --quick 3)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick 1)")
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale (default 10)")
    parser.add_argument("--only", default="", help="comma-separated workload keys or prefixes to run (e.g. select-simple,tpcb)")
    parser.add_argument("--skip", default="", help="comma-separated proxies to leave out: pgbouncer-session, pgbouncer-tx, pgpool, pgsplit, pgsplit-reuseport")
    parser.add_argument("--idle", default="", help="idle-client counts (default 1000,10000; --quick 200,1000; 0 = skip)")
    parser.add_argument("--no-classifier", action="store_true", help="skip bench/classifier")
    parser.add_argument("--no-placement", action="store_true", help="skip the where-did-it-run check")
    parser.add_argument("--pair-ports", default="17432,17433", help="primary,replica ports (default 17432,17433)")
    parser.add_argument("--proxy-base-port", type=int, default=17440, help="first proxy port; uses base..base+5 (default 17440)")
    parser.add_argument("--pgsplit-bin", default="", help="pgsplit executable")
    parser.add_argument("--pgsplit-auth", default="md5", choices=["md5", "scram-sha-256", "trust"],
                        help="client auth on pgsplit (default md5, as PgBouncer and Pgpool-II here)")
    parser.add_argument("--pgpool-statement-lb", default="off", choices=["on", "off"],
                        help="Pgpool-II statement_level_load_balance (default off)")
    parser.add_argument("--keep-pair", action="store_true", help="leave the PostgreSQL pair running at the end")
    parser.add_argument("--vardir", default=os.path.join(ROOT, "var", "bench"))
    parser.add_argument("--out", default=os.path.join(BENCH, "results"))
    args = parser.parse_args()
    args.duration = args.duration or (3 if args.quick else 10)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    idle = args.idle or ("200,1000" if args.quick else "1000,10000")
    idle_counts = [int(x) for x in idle.split(",") if int(x) > 0]
    if args.duration < 1 or args.duration > 600 or args.rounds < 1 or args.rounds > 20:
        parser.error("--duration must be 1..600 and --rounds 1..20")

    case_list = cases(args.quick, args.scale)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",") if w.strip()]
        case_list = [c for c in case_list if any(c.key.startswith(w) for w in wanted)]
        if not case_list:
            parser.error(f"--only {args.only} matches no workload")
    args.max_clients = max(c.clients for c in case_list)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    os.makedirs(args.vardir, exist_ok=True)
    chown_to_server_user(args.vardir)
    os.makedirs(args.out, exist_ok=True)
    started = datetime.datetime.now().astimezone()
    t0 = time.monotonic()
    info = machine()
    primary, replica = (int(p) for p in args.pair_ports.split(","))
    pair = Pair(args.vardir, primary, replica)
    servers = None
    results, memory, places = [], [], []
    classifier_out = {"status": "not run", "text": ""}
    interrupted = ""
    try:
        pair.start()
        pair.init_pgbench(args.scale)
        servers = Servers(args, pair)
        for target in servers.targets:
            servers.start(target)
        if args.rounds * len(case_list) * len(servers.targets) * (args.duration + 2) > 4 * 3600:
            log("warning: this run will take over four hours")
        for rnd in range(args.rounds):
            this_round = {}
            results.append(this_round)
            for case in case_list:
                row = this_round.setdefault(case.key, {})
                for target in servers.targets:
                    if target.is_proxy and not servers.ensure(target):
                        row[target.key] = {"ok": False, "reason": target.error or "not running"}
                        continue
                    res = pgbench(target, case, pair, args.duration)
                    row[target.key] = res
                    shown = f"{res['tps']:.0f} tps" if res.get("ok") else f"FAILED: {res.get('reason', '')}"
                    log(f"round {rnd + 1}/{args.rounds} {case.key:<22} {target.key:<18} {shown}")
                    time.sleep(0.5)
        if not args.no_placement:
            places = placement(servers, pair)
        if idle_counts:
            memory = idle_memory(servers, idle_counts, timeout_s=300)
        if not args.no_classifier:
            log("running bench/classifier (its first run builds the tests in release)")
            classifier_out = classifier(args.quick)
    except Stopped as e:
        interrupted = str(e)
        log(f"interrupted ({e}); writing what was measured")
    except Exception as e:  # noqa: BLE001 - still write the report
        interrupted = f"{type(e).__name__}: {e}"
        log(f"error: {interrupted}")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if servers:
            servers.stop_all()
        if not args.keep_pair:
            pair.stop()

    info["elapsed_min"] = (time.monotonic() - t0) / 60
    if servers is None:
        log("nothing was measured")
        return 1
    summary = summarize(results, case_list, servers.targets)
    md = os.path.join(args.out, "latest.md")
    write_report(args, info, case_list, servers, results, summary, memory, places, classifier_out, started, md)
    if interrupted:
        with open(md, "a") as f:
            f.write(f"\n**This run stopped early**: {interrupted}\n")
    chart_error = write_chart(case_list, servers, summary, info, started, os.path.join(args.out, "latest.png"))
    if chart_error:
        log(f"no chart: {chart_error}")
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        f.write(relative_paths(json.dumps({"started": started.isoformat(), "machine": info, "duration_s": args.duration, "rounds": args.rounds,
                   "targets": {x.key: {"label": x.label, "port": x.port, "error": x.error, "notes": x.notes}
                               for x in servers.targets},
                   "cases": [c.__dict__ for c in case_list], "results": results, "idle_memory": memory,
                   "placement": places, "classifier": classifier_out, "interrupted": interrupted}, indent=1)))
    log(f"wrote {os.path.relpath(md, ROOT)} and latest.png / latest.json beside it")
    return 2 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
