# Starts the engines the scale-out tests run against, on loopback only, and stops them when
# the calling script exits. Source after common.sh.

# start_postgres — installs Debian's postgresql if needed, initdbs a throw-away cluster in a
# temporary directory (as the `postgres` user: initdb refuses root), starts it on a free
# 127.0.0.1 port with fsync and synchronous_commit on, and exports
# FERRY_TEST_POSTGRES_URL (a superuser URL; each test creates its own database).
start_postgres() {
    ensure_packages postgresql
    local bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PG_DIR=$(mktemp -d /tmp/ferry-pg.XXXXXX)
    chown postgres: "$PG_DIR"
    chmod 700 "$PG_DIR"
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local password=ferry-test
    echo "$password" > "$PG_DIR/pw"
    chown postgres: "$PG_DIR/pw"
    runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -U ferry --pwfile="$PG_DIR/pw" -A scram-sha-256 -E UTF8 >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -o \
        "-h 127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=on -c synchronous_commit=on -c max_connections=400 -c shared_buffers=128MB" start >/dev/null
    export FERRY_TEST_POSTGRES_URL="postgres://ferry:$password@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
    echo "PostgreSQL ($("$bin/postgres" --version)) on 127.0.0.1:$PG_PORT, data in $PG_DIR" >&2
    PG_BIN=$bin
    _ferry_cleanups+=("runuser -u postgres -- $bin/pg_ctl -D $PG_DIR/data -m immediate stop >/dev/null 2>&1; rm -rf $PG_DIR")
}

_ferry_cleanups=()
_ferry_cleanup() {
    local c
    for c in "${_ferry_cleanups[@]}"; do eval "$c" || true; done
}
trap _ferry_cleanup EXIT
