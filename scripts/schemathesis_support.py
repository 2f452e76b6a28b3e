#!/usr/bin/env python3
"""Helpers of scripts/schemathesis.sh, standard library only.

  seed BASE AUDIO OUT_DIR   signs up two users and creates one of everything
                            (a follow each way, a ready voice post, a comment,
                            a like, a chat room with a message, a playlist, a
                            device, an upload still awaiting its bytes), then
                            writes OUT_DIR/schemathesis.toml (the real ids as
                            dictionaries, so path and body ids hit real rows
                            half of the time) and OUT_DIR/token.
  summary REPORT.ndjson     prints operations tested, requests made and
                            failures from schemathesis' event stream; exits 1
                            when there is any failure or error.
"""

import json
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, token=None, body=None, expect=(200, 201, 202, 204)):
    """One JSON request; returns the parsed answer (None when empty)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if status not in expect:
        raise SystemExit(f"seed: {method} {path} answered {status}: {raw[:300]!r}")
    return json.loads(raw) if raw else None


def upload_ready_media(base, token, audio_path):
    """Uploads `audio_path` through the signed URL and waits until it is ready."""
    audio = open(audio_path, "rb").read()
    created = call(base, "POST", "/v1/media", token,
                   {"content_type": "audio/mp4", "size_bytes": len(audio)})
    up = created["upload"]
    req = urllib.request.Request(up["url"], data=audio, method=up["method"])
    for name, value in up["headers"].items():
        req.add_header(name, value)
    with urllib.request.urlopen(req, timeout=30) as r:
        if r.status >= 300:
            raise SystemExit(f"seed: upload answered {r.status}")
    call(base, "POST", f"/v1/media/{created['id']}/complete", token)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        media = call(base, "GET", f"/v1/media/{created['id']}", token)
        if media["state"] == "ready":
            return created["id"]
        if media["state"] == "failed":
            raise SystemExit(f"seed: media failed: {media.get('reason')}")
        time.sleep(0.5)
    raise SystemExit("seed: media not ready after 120 s")


def seed(base, audio_path):
    """Creates the resources; returns (alice's token, {dictionary: [ids]})."""
    def signup(handle):
        body = {"handle": handle, "password": "correct horse battery", "display_name": handle}
        return call(base, "POST", "/v1/auth/signup", body=body)

    alice, bob = signup("fuzz_alice"), signup("fuzz_bob")
    a, b = alice["token"], bob["token"]
    ua, ub = alice["user_id"], bob["user_id"]
    call(base, "PUT", f"/v1/users/{ub}/follow", a)
    call(base, "PUT", f"/v1/users/{ua}/follow", b)
    media = upload_ready_media(base, a, audio_path)
    post = call(base, "POST", "/v1/posts", a,
                {"media_id": media, "caption": "rain on the roof #rain", "tags": ["rain"]})["id"]
    call(base, "PUT", f"/v1/posts/{post}/like", b)
    comment = call(base, "POST", f"/v1/posts/{post}/comments", b, {"text": "lovely"})["id"]
    room = call(base, "POST", "/v1/chats", a, {"user_id": ub})["id"]
    message = call(base, "POST", f"/v1/chats/{room}/messages", b,
                   {"kind": "text", "text": "hello"})["id"]
    playlist = call(base, "POST", "/v1/playlists", a,
                    {"title": "Rain", "description": "wet sounds", "public": True})["id"]
    call(base, "POST", f"/v1/playlists/{playlist}/items", a, {"post_id": post})
    pending = call(base, "POST", "/v1/media", a,
                   {"content_type": "audio/mp4", "size_bytes": 1000})["id"]
    call(base, "PUT", "/v1/me/devices/phone1", a,
         {"platform": "fcm", "push_token": "fcm-token-1"})
    ids = {
        "users": [ua, ub],
        "posts": [post],
        "media": [media, pending],
        "comments": [comment],
        "chats": [room],
        "messages": [message],
        "playlists": [playlist],
        "devices": ["phone1"],
        # Search and explore terms that find the seeded users and post.
        "terms": ["rain", "#rain", "fuzz", "fuzz_bob"],
    }
    return a, ids


def toml_str(value):
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(value)


def write_config(out_dir, ids):
    """schemathesis.toml: dictionaries of real ids and which parameters use them."""
    lines = ["# Written by scripts/schemathesis_support.py seed", ""]
    for name, values in ids.items():
        lines.append(f"[dictionaries.{name}]")
        lines.append("values = [" + ", ".join(toml_str(v) for v in values) + "]")
        lines.append("")
    # Which dictionary each path parameter of an operation draws from.
    path_ids = [
        (r"^/v1/users/\{id\}", "path.id", "users"),
        (r"^/v1/posts/\{id\}", "path.id", "posts"),
        (r"^/v1/media/\{id\}", "path.id", "media"),
        (r"^/v1/comments/\{id\}", "path.id", "comments"),
        (r"^/v1/chats/\{id\}", "path.id", "chats"),
        (r"^/v1/playlists/\{id\}", "path.id", "playlists"),
        (r"^/v1/me/devices/\{device_id\}", "path.device_id", "devices"),
    ]
    body_ids = {
        "body.user_id": "users",
        "body.post_id": "posts",
        "body.media_id": "media",
        "body.message_id": "messages",
        "body.target_id": "posts",
        "query.q": "terms",
        "query.tag": "terms",
    }
    for regex, param, dictionary in path_ids:
        lines.append("[[operations]]")
        lines.append(f"include-path-regex = {toml_str(regex)}")
        lines.append("[operations.parameters]")
        bindings = {param: dictionary, **body_ids}
        if regex.startswith(r"^/v1/playlists"):
            bindings["path.post_id"] = "posts"
        for key, dic in bindings.items():
            lines.append(f'{toml_str(key)} = {{ dictionary = "{dic}", probability = 0.5 }}')
        lines.append("")
    # Operations without path ids still get real ids in their bodies.
    lines.append("[parameters]")
    for key, dic in body_ids.items():
        lines.append(f'{toml_str(key)} = {{ dictionary = "{dic}", probability = 0.5 }}')
    with open(f"{out_dir}/schemathesis.toml", "w") as f:
        f.write("\n".join(lines) + "\n")


METHODS = ("GET ", "POST ", "PUT ", "PATCH ", "DELETE ")


def summary(report_path):
    """Counts operations, requests and failures in the ndjson event stream."""
    operations, requests, failures, errors = set(), 0, set(), []
    with open(report_path) as f:
        for line in f:
            event = json.loads(line)
            if "ScenarioFinished" in event:
                recorder = event["ScenarioFinished"]["recorder"]
                label = recorder.get("label", "")
                if label.startswith(METHODS) and "->" not in label:
                    operations.add(label)
                # One interaction (request and response) per generated case.
                requests += len(recorder.get("interactions", {}))
                for checks in recorder.get("checks", {}).values():
                    for check in checks:
                        if check.get("status", "").lower() == "failure":
                            info = check.get("failure_info") or {}
                            title = (info.get("failure") or {}).get("title") or check.get("name")
                            failures.add((label, check.get("name"), str(title)))
            elif "NonFatalError" in event:
                errors.append(event["NonFatalError"].get("label", "?"))
            elif "FatalError" in event:
                errors.append("fatal: " + json.dumps(event["FatalError"])[:300])
    print(f"operations tested: {len(operations)}")
    print(f"requests made:     {requests}")
    print(f"failures:          {len(failures)} distinct (operation, check, problem)")
    for label, name, title in sorted(failures):
        print(f"  {label}: {name}: {title}")
    print(f"errors:            {len(errors)}")
    for e in errors:
        print(f"  {e}")
    return 1 if failures or errors else 0


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "seed":
        base, audio, out_dir = sys.argv[2:5]
        token, ids = seed(base, audio)
        write_config(out_dir, ids)
        with open(f"{out_dir}/token", "w") as f:
            f.write(token)
        print("seeded: " + ", ".join(f"{len(v)} {k}" for k, v in ids.items()), file=sys.stderr)
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "summary":
        return summary(sys.argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
