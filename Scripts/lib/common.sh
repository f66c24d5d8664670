# Shared by the scripts in Scripts/: run from the repository root, install what is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# ensure_packages PKG... — installs the Debian packages that are not installed yet.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# System packages Ferry builds and tests with: SQLite for GRDB, openssl and coreutils for
# the benchmarks' reference numbers.
FERRY_PACKAGES=(libsqlite3-dev openssl coreutils curl)

require_swift() {
    command -v swift >/dev/null || { echo "swift is not on PATH; install Swift 6.1 or later from swift.org" >&2; exit 1; }
}

# free_port — prints a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_health URL [CURL-ARGS…] — waits up to 15 s for URL/api/v1/health to answer 2xx;
# returns 1 if it never does.
wait_for_health() {
    local url="$1"; shift
    for _ in $(seq 1 150); do
        curl -fs "$@" "$url/api/v1/health" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}
