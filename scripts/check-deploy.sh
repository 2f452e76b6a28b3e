#!/usr/bin/env bash
# Checks the deployment files under deploy/ as far as this machine allows
# (no cluster, no Docker daemon, no Prometheus or Grafana server), with the
# tools scripts/setup.sh test installs:
#   - Kubernetes manifests against the API's schemas (kubernetes-validate);
#   - the Prometheus alerting rules (promtool check rules), their unit
#     tests (promtool test rules), and each alert's runbook section in
#     docs/OPERATIONS.md;
#   - every expression of the Grafana dashboard parses as PromQL (promtool,
#     on a rule file made of them);
#   - the compose file against the Compose specification's schema, and every
#     variable it gives Sori exists in `sori --help`.
# That every metric these files name is exposed by a running process is
# api/tests/ops.rs's test.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool=.tools/promtool
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "== Kubernetes manifests (schemas of the API; KEDA's CRDs are not bundled)"
manifests="$(.venv-k8s/bin/kubernetes-validate --strict --quiet deploy/k8s/*.yaml 2>&1)" \
  || { echo "$manifests"; exit 1; }
echo "$manifests"
if grep -q '^ERROR' <<<"$manifests"; then exit 1; fi

echo "== Prometheus alerting rules"
(cd deploy/prometheus && "../../$promtool" check rules sori-alerts.yaml \
  && "../../$promtool" test rules sori-alerts.test.yaml)

# Every alert's runbook is a section of docs/OPERATIONS.md.
.venv-k8s/bin/python - deploy/prometheus/sori-alerts.yaml docs/OPERATIONS.md <<'PY'
import re, sys
import yaml
rules_path, doc_path = sys.argv[1:]
doc = open(doc_path).read()
anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-")
           for h in re.findall(r"^#+ (.+)$", doc, re.M)}
missing = []
for group in yaml.safe_load(open(rules_path))["groups"]:
    for rule in group["rules"]:
        link = rule["annotations"].get("runbook", "")
        path, _, anchor = link.partition("#")
        if path != doc_path or anchor not in anchors:
            missing.append(f"{rule['alert']}: {link or 'no runbook'}")
for m in missing:
    print(f"{rules_path}: runbook not found: {m}")
sys.exit(1 if missing else 0)
PY
echo "runbooks: every alert's section exists in docs/OPERATIONS.md"

echo "== Grafana dashboard expressions"
# Grafana's interval variables become a fixed window; each expression one
# recording rule (JSON is YAML).
jq '{groups: [{name: "dashboard", rules: [
      [.. | objects | select(has("expr")) | .expr] | to_entries[]
      | {record: "dashboard:expr_\(.key)", expr: (.value | gsub("\\$__rate_interval"; "5m"))}
    ]}]}' deploy/grafana/sori-dashboard.json > "$tmp/dashboard-rules.json"
"$promtool" check rules "$tmp/dashboard-rules.json"

echo "== Compose file"
cargo run --quiet --bin sori -- --help > "$tmp/help.txt"
.venv-k8s/bin/python - deploy/compose/compose.yaml .tools/compose-spec.json "$tmp/help.txt" <<'PY'
import json, re, sys
import jsonschema, yaml
compose_path, schema_path, help_path = sys.argv[1:]
compose = yaml.safe_load(open(compose_path))
schema = json.load(open(schema_path))
errors = list(jsonschema.Draft201909Validator(schema).iter_errors(compose))
for e in errors:
    print(f"{compose_path}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
help_text = open(help_path).read()
unknown = []
for name, service in compose["services"].items():
    if not str(service.get("image", "")).startswith("sori:"):
        continue
    env = service.get("environment") or {}
    for key in env:
        if re.match(r"^(SORI_|DATABASE_URL$|AWS_)", key) and key not in help_text:
            unknown.append(f"{name}: {key}")
for u in unknown:
    print(f"{compose_path}: not in `sori --help`: {u}")
if errors or unknown:
    sys.exit(1)
print(f"{compose_path}: valid, {len(compose['services'])} services")
PY

# The worker-scaling simulation of docs/SCALING.md still runs and finishes
# every upload of a small day.
python3 benches/lunch_spike.py --uploads 20000 --settings 5:15:40 --check >/dev/null
echo "benches/lunch_spike.py: a simulated day ran to the end"
