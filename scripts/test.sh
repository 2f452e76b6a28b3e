#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up, format, lints, then every test
# on SQLite and the database-backed tests again on PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test

export SORI_TEST_DATABASE_URL="${SORI_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
scripts/check-deploy.sh

# Each PostgreSQL test makes its own schema t_<uuid>; drop the last run's.
psql "$SORI_TEST_DATABASE_URL" -qAt -c \
  "SELECT 'DROP SCHEMA ' || nspname || ' CASCADE;' FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'" \
  | psql "$SORI_TEST_DATABASE_URL" -q >/dev/null

# The S3/SQS backend tests talk to a local moto server; stop it however we exit.
trap 'scripts/aws-test-server.sh stop' EXIT
SORI_TEST_AWS_ENDPOINT="$(scripts/aws-test-server.sh start)"
export SORI_TEST_AWS_ENDPOINT

echo "== tests on SQLite (all crates)"
SORI_TEST_DB=sqlite cargo nextest run --workspace --no-fail-fast
echo "== database tests on PostgreSQL"
SORI_TEST_DB=postgres cargo nextest run -p sori-db -p sori-pipeline -p sori-api -p sori --no-fail-fast
