#!/usr/bin/env bash
# Builds Sori (optimized) and runs `sori serve` on embedded defaults:
# SQLite, blobs and queue under ./data, listening on 127.0.0.1:8080.
# Extra arguments go to `sori`, e.g. `scripts/serve.sh --listen 0.0.0.0:8080`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh serve
exec cargo run --release --locked --bin sori -- serve "$@"
