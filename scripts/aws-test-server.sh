#!/usr/bin/env bash
# Starts or stops the local S3 + SQS server (moto) that the AWS backend tests
# talk to, on loopback only.
#
#   scripts/aws-test-server.sh start    # prints the endpoint URL on stdout
#   scripts/aws-test-server.sh stop
#   scripts/aws-test-server.sh status   # prints the URL if running, else exits 1
#
# `start` is idempotent: a server this script started and that still answers
# is reused. It takes port $SORI_TEST_AWS_PORT (default 5000) when that port is
# free, and otherwise any free loopback port; the tests read the URL from
# $SORI_TEST_AWS_ENDPOINT, so callers export what `start` prints:
#
#   export SORI_TEST_AWS_ENDPOINT="$(scripts/aws-test-server.sh start)"
#
# moto comes from scripts/setup.sh (`.venv-moto/`) or from PATH. Its log, pid
# and URL live in `.moto/` at the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
state=.moto
mkdir -p "$state"

moto_bin() {
    if [ -x .venv-moto/bin/moto_server ]; then echo .venv-moto/bin/moto_server
    elif command -v moto_server >/dev/null; then command -v moto_server
    else echo "aws-test-server: moto_server not found; run scripts/setup.sh test" >&2; exit 1
    fi
}

answers() { curl -s -o /dev/null --max-time 2 "$1/moto-api/data.json"; }

port_free() {
    python3 -c 'import socket,sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

free_port() {
    python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
    [ -f "$state/pid" ] && [ -f "$state/url" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null \
        && answers "$(cat "$state/url")"
}

start() {
    if running; then cat "$state/url"; return; fi
    local bin port url pid
    bin="$(moto_bin)"
    port="${SORI_TEST_AWS_PORT:-5000}"
    port_free "$port" || port="$(free_port)"
    url="http://127.0.0.1:$port"
    # setsid: the server outlives this script but not a `stop`, which kills
    # its whole process group.
    setsid "$bin" -H 127.0.0.1 -p "$port" >"$state/log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$state/pid"
    for _ in $(seq 1 100); do
        if answers "$url"; then echo "$url" >"$state/url"; echo "$url"; return; fi
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "aws-test-server: moto did not answer on $url; its log:" >&2
    cat "$state/log" >&2
    stop
    exit 1
}

stop() {
    if [ -f "$state/pid" ]; then
        local pid
        pid="$(cat "$state/pid")"
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$state/pid" "$state/url"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) running && cat "$state/url" ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
