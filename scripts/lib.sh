# Shared by scripts/test and scripts/demo: install what the build and the test pair need, only
# when it is missing (a warm machine runs no apt).
ensure_packages() {
  local missing=()
  [[ -x /usr/lib/postgresql/15/bin/postgres && -x /usr/lib/postgresql/15/bin/pgbench ]] || missing+=(postgresql-15)
  command -v psql >/dev/null 2>&1 || missing+=(postgresql-client-15)
  [[ -f /usr/include/postgresql/libpq-fe.h ]] || missing+=(libpq-dev)
  [[ -f /usr/include/openssl/ssl.h ]] || missing+=(libssl-dev)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
