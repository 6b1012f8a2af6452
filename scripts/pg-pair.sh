#!/usr/bin/env bash
# pg-pair.sh — a PostgreSQL 15 primary and its streaming replica, for tests and the demo.
#
#   scripts/pg-pair.sh start  DIR PRIMARY_PORT REPLICA_PORT
#   scripts/pg-pair.sh stop   DIR
#   scripts/pg-pair.sh status DIR
#
# Both servers listen on 127.0.0.1 only; their unix sockets live in DIR/sock, their data in
# DIR/primary and DIR/replica, their logs (every statement) in DIR/primary.log and DIR/replica.log.
# Superuser: "postgres" over the unix socket (trust). Database "app"; roles app_rw / app_ro and the
# client users alice (SCRAM), bob (md5), carol, admin. When run as root the servers run as the
# ordinary OS user "pgsplit". Both servers have ssl = on with a certificate for localhost and
# 127.0.0.1 signed by a test CA: DIR/tls/ca.crt (clients may also connect without TLS).
set -euo pipefail

PG_MAJOR=15
PGBIN=/usr/lib/postgresql/$PG_MAJOR/bin
OS_USER=pgsplit

die() { echo "pg-pair: $*" >&2; exit 1; }
log() { echo "pg-pair: $*" >&2; }

usage() {
  echo "usage: $0 start DIR PRIMARY_PORT REPLICA_PORT | stop DIR | status DIR" >&2
  exit 2
}

ensure_server() {
  if [[ ! -x $PGBIN/postgres || ! -x $PGBIN/pg_basebackup ]]; then
    [[ $(id -u) -eq 0 ]] || die "PostgreSQL $PG_MAJOR server binaries are missing and we are not root to install them"
    log "installing postgresql-$PG_MAJOR"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "postgresql-$PG_MAJOR" >/dev/null
  fi
}

ensure_user() {
  if [[ $(id -u) -eq 0 ]] && ! id -u "$OS_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /bin/bash "$OS_USER" 2>/dev/null \
      || useradd -M -s /bin/bash "$OS_USER"
  fi
}

# Run a command as the server's OS user.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$OS_USER" -- "$@"
  else
    "$@"
  fi
}

running() { # DATADIR
  [[ -f $1/PG_VERSION ]] && as_pg "$PGBIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

wait_ready() { # PORT
  local i
  for ((i = 0; i < 300; i++)); do
    if "$PGBIN/pg_isready" -q -h "$SOCK" -p "$1" -d postgres -U postgres; then return 0; fi
    sleep 0.1
  done
  die "server on port $1 did not become ready (see $DIR/*.log)"
}

psql_su() { # PORT DB SQL...
  local port=$1 db=$2; shift 2
  "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$port" -U postgres -d "$db" "$@"
}

server_conf() { # PORT NAME
  cat <<CONF
# --- pg-pair settings ---
listen_addresses = '127.0.0.1'
port = $1
unix_socket_directories = '$SOCK'
max_connections = 300
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
logging_collector = off
log_statement = 'all'
log_line_prefix = '%m port=$1 pid=%p user=%u db=%d app=%a '
log_connections = on
log_disconnections = on
cluster_name = '$2'
CONF
}

provision_sql() {
  cat <<'SQL'
CREATE ROLE app_rw LOGIN PASSWORD 'app_rw';
CREATE ROLE app_ro LOGIN PASSWORD 'app_ro';
CREATE DATABASE app OWNER app_rw;
SET password_encryption = 'scram-sha-256';
CREATE ROLE alice LOGIN PASSWORD 'alice-secret';
SET password_encryption = 'md5';
CREATE ROLE bob LOGIN PASSWORD 'bob-secret';
RESET password_encryption;
CREATE ROLE carol LOGIN PASSWORD 'carol-secret';
CREATE ROLE admin LOGIN PASSWORD 'admin-secret';
SQL
}

provision_app_sql() {
  cat <<'SQL'
GRANT CONNECT ON DATABASE app TO app_ro, alice, bob, carol, admin;
GRANT USAGE ON SCHEMA public TO app_ro;
GRANT USAGE, CREATE ON SCHEMA public TO alice, bob, carol;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_ro;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO app_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE app_rw, alice, bob, carol IN SCHEMA public
  GRANT SELECT ON TABLES TO app_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE app_rw, alice, bob, carol IN SCHEMA public
  GRANT SELECT ON SEQUENCES TO app_ro;
ALTER DEFAULT PRIVILEGES FOR ROLE app_rw, alice, bob, carol IN SCHEMA public
  GRANT ALL ON TABLES TO app_rw, alice, bob, carol;
ALTER DEFAULT PRIVILEGES FOR ROLE app_rw, alice, bob, carol IN SCHEMA public
  GRANT ALL ON SEQUENCES TO app_rw, alice, bob, carol;
ALTER DEFAULT PRIVILEGES FOR ROLE app_rw, alice, bob, carol IN SCHEMA public
  GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
SQL
}

# A CA and a server certificate for localhost / 127.0.0.1 in DIR/tls (made once), so that clients
# can use sslmode=verify-full with sslrootcert=DIR/tls/ca.crt.
ensure_tls() {
  if [[ ! -s $TLS/server.crt || ! -s $TLS/server.key || ! -s $TLS/ca.crt ]]; then
    command -v openssl >/dev/null || die "openssl is needed to make the test certificates"
    log "making a test CA and server certificate in $TLS"
    mkdir -p "$TLS"
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${ec[@]}" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" -days 3650 \
      -subj "/CN=pg-pair test CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req "${ec[@]}" -keyout "$TLS/server.key" -out "$TLS/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$TLS/server.ext"
    openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" -set_serial "$RANDOM$RANDOM" \
      -days 3650 -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
    rm -f "$TLS/server.csr" "$TLS/server.ext"
  fi
  chmod 755 "$TLS"
  chmod 644 "$TLS/ca.crt" "$TLS/server.crt"
  chmod 600 "$TLS/server.key" "$TLS/ca.key"
  if [[ $(id -u) -eq 0 ]]; then
    chown "$OS_USER" "$TLS/server.key" "$TLS/server.crt"
  fi
}

# Turns on ssl in a data folder's configuration (once); reloads a running server. The md5 "host"
# lines match clients with and without TLS, so non-TLS clients keep working.
enable_ssl() { # DATADIR
  local conf=$1/postgresql.conf
  grep -q '^# --- pg-pair tls ---' "$conf" && return 0
  cat >>"$conf" <<CONF
# --- pg-pair tls ---
ssl = on
ssl_cert_file = '$TLS/server.crt'
ssl_key_file = '$TLS/server.key'
CONF
  if running "$1"; then
    as_pg "$PGBIN/pg_ctl" reload -D "$1" >/dev/null
  fi
}

cmd_start() {
  local pport=$1 rport=$2
  [[ $pport =~ ^[0-9]+$ && $rport =~ ^[0-9]+$ ]] || usage
  ensure_server
  ensure_user
  mkdir -p "$DIR" "$SOCK"
  if [[ $(id -u) -eq 0 ]]; then
    chown "$OS_USER" "$DIR" "$SOCK"
    as_pg test -w "$DIR" || die "$DIR is not accessible to the OS user $OS_USER (check the parent folders' permissions)"
  fi
  chmod 755 "$DIR" "$SOCK"

  local fresh=0
  if [[ ! -f $PRIMARY/PG_VERSION ]]; then
    log "initdb primary on port $pport"
    rm -rf "$PRIMARY" "$REPLICA"
    as_pg "$PGBIN/initdb" -D "$PRIMARY" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
    server_conf "$pport" primary >>"$PRIMARY/postgresql.conf"
    cat >"$PRIMARY/pg_hba.conf" <<HBA
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  trust
local   replication  all                  trust
host    all          all   127.0.0.1/32   md5
host    replication  all   127.0.0.1/32   md5
HBA
    fresh=1
  fi
  ensure_tls
  enable_ssl "$PRIMARY"
  if ! running "$PRIMARY"; then
    as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$PRIMARY" -l "$DIR/primary.log" >/dev/null
  fi
  wait_ready "$pport"

  if [[ $fresh -eq 1 || ! -f $DIR/.provisioned ]]; then
    provision_sql | psql_su "$pport" postgres
    provision_app_sql | psql_su "$pport" app
    touch "$DIR/.provisioned"
  fi

  if [[ ! -f $REPLICA/PG_VERSION ]]; then
    log "pg_basebackup replica on port $rport"
    rm -rf "$REPLICA"
    as_pg "$PGBIN/pg_basebackup" -D "$REPLICA" -R -X stream -c fast -h "$SOCK" -p "$pport" -U postgres
    {
      server_conf "$rport" replica
      echo "primary_slot_name = ''"
    } >>"$REPLICA/postgresql.conf"
  fi
  enable_ssl "$REPLICA"
  if ! running "$REPLICA"; then
    as_pg "$PGBIN/pg_ctl" start -w -t 60 -D "$REPLICA" -l "$DIR/replica.log" >/dev/null
  fi
  wait_ready "$rport"

  # Wait until the replica streams from the primary.
  local i state=""
  for ((i = 0; i < 300; i++)); do
    state=$(psql_su "$pport" postgres -At -c "SELECT state FROM pg_stat_replication WHERE application_name = 'replica' LIMIT 1" 2>/dev/null || true)
    [[ $state == streaming ]] && break
    sleep 0.1
  done
  [[ $state == streaming ]] || die "replica on port $rport is not streaming (state '$state')"
  [[ $(psql_su "$rport" postgres -At -c "SELECT pg_is_in_recovery()") == t ]] || die "port $rport is not a standby"
  echo "$pport" >"$DIR/primary.port"
  echo "$rport" >"$DIR/replica.port"
  log "primary 127.0.0.1:$pport, replica 127.0.0.1:$rport (streaming), data in $DIR"
}

cmd_stop() {
  local d
  for d in "$REPLICA" "$PRIMARY"; do
    if running "$d"; then
      as_pg "$PGBIN/pg_ctl" stop -w -t 60 -m fast -D "$d" >/dev/null || true
    fi
  done
  return 0
}

cmd_status() {
  local rc=0 d
  for d in "$PRIMARY" "$REPLICA"; do
    if running "$d"; then
      echo "$(basename "$d"): running (port $(cat "$DIR/$(basename "$d").port" 2>/dev/null || echo '?'))"
    else
      echo "$(basename "$d"): stopped"
      rc=1
    fi
  done
  return $rc
}

[[ $# -ge 2 ]] || usage
CMD=$1
DIR=$2
mkdir -p "$DIR" 2>/dev/null || true
DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "cannot use folder $2"
PRIMARY=$DIR/primary
REPLICA=$DIR/replica
SOCK=$DIR/sock
TLS=$DIR/tls

case $CMD in
  start) [[ $# -eq 4 ]] || usage; cmd_start "$3" "$4" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) usage ;;
esac
