#!/usr/bin/env python3
"""Helper of benches/pipeline-throughput.sh (standard library only).

  pipeline_client.py service BASE_URL CLIP...   upload every clip through the API
      (sign up, POST /v1/media, PUT, then /complete for all), poll until every
      media is ready or failed; prints JSON {"jobs", "ready", "failed",
      "upload_s", "service_s"} where service_s runs from the first /complete
      to the moment the last media was seen final.
  pipeline_client.py process SORI_BIN PARALLEL CLIP...   runs `sori process`
      on every clip, PARALLEL at a time; prints JSON {"jobs", "wall_s",
      "sum_s"}: the batch's wall time and the sum of per-file wall times.
"""

import concurrent.futures
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

POLL_PAUSE = 0.1
DEADLINE_S = 1800


def call(method, url, body=None, token=None, headers=None, data=None):
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["content-type"] = "application/json"
    if token:
        hdrs["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    with urllib.request.urlopen(req, timeout=60) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def service(base, clips):
    handle = "bench_" + uuid.uuid4().hex[:12]
    token = call("POST", f"{base}/v1/auth/signup", {
        "handle": handle, "password": "bench-password-1", "display_name": "Bench",
    })["token"]
    t0 = time.monotonic()
    ids = []
    for path in clips:
        with open(path, "rb") as f:
            data = f.read()
        created = call("POST", f"{base}/v1/media",
                       {"content_type": "audio/mp4", "size_bytes": len(data)}, token)
        up = created["upload"]
        call(up["method"], up["url"], headers=up["headers"], data=data)
        ids.append(created["id"])
    upload_s = time.monotonic() - t0
    start = time.monotonic()
    for media_id in ids:
        call("POST", f"{base}/v1/media/{media_id}/complete", {}, token)
    states = wait_all(base, token, ids, start)
    service_s = time.monotonic() - start
    return {
        "jobs": len(ids),
        "ready": sum(s == "ready" for s in states.values()),
        "failed": sum(s == "failed" for s in states.values()),
        "upload_s": round(upload_s, 3),
        "service_s": round(service_s, 3),
    }


def wait_all(base, token, ids, start):
    """Polls the oldest unfinished media only (jobs finish roughly in order),
    so the client adds little load; the last one seen final ends the clock."""
    states = {}
    pending = list(ids)
    while pending:
        if time.monotonic() - start > DEADLINE_S:
            raise SystemExit(f"timeout: {len(pending)} media still unfinished")
        state = call("GET", f"{base}/v1/media/{pending[0]}", token=token)["state"]
        if state in ("ready", "failed"):
            states[pending.pop(0)] = state
        else:
            time.sleep(POLL_PAUSE)
    return states


def process(sori, parallel, clips):
    def one(path):
        with tempfile.TemporaryDirectory() as out:
            t = time.monotonic()
            subprocess.run([sori, "process", path, "--out", out], check=True,
                           stdout=subprocess.DEVNULL)
            return time.monotonic() - t

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=parallel) as pool:
        times = list(pool.map(one, clips))
    return {"jobs": len(clips), "wall_s": round(time.monotonic() - t0, 3),
            "sum_s": round(sum(times), 3)}


def main(argv):
    if len(argv) >= 3 and argv[1] == "service":
        result = service(argv[2].rstrip("/"), argv[3:])
    elif len(argv) >= 4 and argv[1] == "process":
        result = process(argv[2], int(argv[3]), argv[4:])
    else:
        raise SystemExit(__doc__)
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main(sys.argv)
