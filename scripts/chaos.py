#!/usr/bin/env python3
"""The chaos run of scripts/chaos.sh (standard library only).

  chaos.py SORI_BIN WORK_DIR SECONDS

Starts the production stack of sori_stack.py, runs a load generator (uploads
through presigned PUT + /complete, posts, chat messages) for SECONDS while a
chaos loop SIGKILLs workers, SIGKILLs and restarts the API, kills and restarts
S3 (s3s-fs), cuts SQS (its proxy) and crashes PostgreSQL. Then it lets the
system settle and checks, through the API and the database, that

  * every upload acknowledged (/complete answered 202) is `ready`, or
    `failed` with a reason;
  * every post and chat message acknowledged (201, or the idempotent
    answer to a retry) exists exactly once;
  * no job is stuck: no media `queued` or `processing`, the outbox and the
    queue are empty.

Prints the counts; exits 1 when anything is lost, duplicated or stuck.
Settings (environment): CHAOS_SEED, CHAOS_SETTLE_SECS (240), CHAOS_PG_RESTARTS
(3), PG_URL (postgres://postgres@127.0.0.1:5432), CHAOS_DB (sori_chaos).
"""

import collections
import os
import random
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sori_stack import Stack, http  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = ["speech-mono-16k.m4a", "speech-mono-48k.opus", "speech-stereo-44k.mp3",
        "speech-mono-48k-mediarecorder.webm"]
BAD = ["bad-garbage.m4a", "bad-truncated.mp3"]
TYPES = {".m4a": "audio/mp4", ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".webm": "audio/webm"}
# How long one operation keeps retrying through outages before it gives up.
OP_DEADLINE = 120
RETRY_PAUSE = 0.5
UPLOADERS = 3
PENDING_PER_UPLOADER = 3
CHAT_PAIRS = 2


class Gave(Exception):
    """An operation never got an acknowledgement within OP_DEADLINE."""


class Ledger:
    """What the server acknowledged, and what the clients saw on the way."""

    def __init__(self):
        self.lock = threading.Lock()
        self.uploads = {}          # media id -> owner token (complete answered 202)
        self.posts = {}            # caption -> post id (None: 409 on a retry, id unknown)
        self.messages = {}         # body -> message id
        self.counts = collections.Counter()

    def count(self, what, n=1):
        with self.lock:
            self.counts[what] += n


def retrying(ledger, what, call, ok):
    """Calls `call()` until `ok(status, body)` says done (returns its value),
    retrying transport errors and 5xx; any other status is a bug."""
    deadline = time.monotonic() + OP_DEADLINE
    attempt = 0
    while True:
        attempt += 1
        try:
            status, body = call()
        except OSError as e:
            status, body = None, str(e)
        if status is not None and status < 500:
            done = ok(status, body, attempt)
            if done is not None:
                return done
            raise RuntimeError(f"{what}: unexpected {status} {body}")
        ledger.count(f"retries.{what}")
        if time.monotonic() > deadline:
            ledger.count(f"gave_up.{what}")
            raise Gave(what)
        time.sleep(RETRY_PAUSE)


def sign_up(base, ledger, handle):
    body = {"handle": handle, "password": "chaos-password-1", "display_name": handle}
    return retrying(ledger, "signup", lambda: http("POST", f"{base}/v1/auth/signup", body),
                    lambda s, b, n: b if s == 201 else None)


def upload_and_post(base, ledger, token, fixture, n):
    path = os.path.join(REPO, "fixtures", fixture)
    with open(path, "rb") as f:
        data = f.read()
    ctype = TYPES[os.path.splitext(fixture)[1]]
    created = retrying(ledger, "media", lambda: http(
        "POST", f"{base}/v1/media", {"content_type": ctype, "size_bytes": len(data)}, token),
        lambda s, b, n: b if s == 201 else None)
    up = created["upload"]
    retrying(ledger, "put", lambda: http(up["method"], up["url"], headers=up["headers"], data=data),
             lambda s, b, n: True if s in (200, 204) else None)
    media_id = created["id"]
    retrying(ledger, "complete", lambda: http("POST", f"{base}/v1/media/{media_id}/complete", {}, token),
             lambda s, b, n: True if s == 202 else None)
    with ledger.lock:
        ledger.uploads[media_id] = token
    caption = f"chaos post {n} {uuid.uuid4().hex[:12]}"
    if fixture in BAD:
        return  # a failed media cannot be posted; its upload is checked alone

    def posted(status, body, attempt):
        if status == 201:
            return body["id"]
        if status == 409 and attempt > 1:
            return ""  # an earlier attempt was committed but its answer lost
        if status == 422 and "failed processing" in str(body):
            return "failed"
        return None

    post_id = retrying(ledger, "post", lambda: http(
        "POST", f"{base}/v1/posts", {"media_id": media_id, "caption": caption}, token), posted)
    if post_id == "failed":
        ledger.count("post_refused_media_failed")
        return
    with ledger.lock:
        ledger.posts[caption] = post_id or None


def wait_final(base, token, media_id, stop):
    """Polls one media until it is final (through outages), or until `stop`."""
    while not stop.is_set():
        try:
            status, body = http("GET", f"{base}/v1/media/{media_id}", token=token)
            if status == 200 and body.get("state") in ("ready", "failed"):
                return
        except OSError:
            pass
        time.sleep(RETRY_PAUSE)


def uploader(base, ledger, stop, seed):
    """Uploads and posts in a loop, with at most PENDING_PER_UPLOADER of its
    uploads unfinished (as a person waits for their clips), so the backlog
    stays bounded on any machine."""
    rng = random.Random(seed)
    person = sign_up(base, ledger, f"up_{uuid.uuid4().hex[:10]}")
    n = 0
    mine = []
    while not stop.is_set():
        n += 1
        fixture = rng.choice(BAD) if rng.random() < 0.1 else rng.choice(GOOD)
        before = set(ledger.uploads)
        try:
            upload_and_post(base, ledger, person["token"], fixture, f"{seed}.{n}")
        except Gave:
            pass
        with ledger.lock:
            mine += [m for m in ledger.uploads if m not in before and ledger.uploads[m] == person["token"]]
        while len(mine) >= PENDING_PER_UPLOADER and not stop.is_set():
            wait_final(base, person["token"], mine.pop(0), stop)
        time.sleep(rng.uniform(0.1, 0.5))


def chatter(base, ledger, stop, seed):
    rng = random.Random(seed)
    a = sign_up(base, ledger, f"ca_{uuid.uuid4().hex[:10]}")
    b = sign_up(base, ledger, f"cb_{uuid.uuid4().hex[:10]}")
    room = retrying(ledger, "room", lambda: http("POST", f"{base}/v1/chats", {"user_id": b["user_id"]},
                                                 a["token"]),
                    lambda s, body, n: body["id"] if s in (200, 201) else None)
    while not stop.is_set():
        sender = rng.choice([a, b])
        client_id = uuid.uuid4().hex
        text = f"chaos msg {client_id}"
        try:
            msg_id = retrying(ledger, "message", lambda: http(
                "POST", f"{base}/v1/chats/{room}/messages",
                {"kind": "text", "text": text, "client_id": client_id}, sender["token"]),
                lambda s, body, n: body["id"] if s in (200, 201) else None)
        except Gave:
            continue
        with ledger.lock:
            ledger.messages[text] = msg_id
        time.sleep(rng.uniform(0.02, 0.1))


def chaos_loop(stack, stop, rng, faults, pg_restarts, log):
    """Picks a fault every 3–8 s until `stop`; PostgreSQL at most `pg_restarts` times."""
    kinds = ["worker_kill", "worker_kill", "api_restart", "s3_restart", "sqs_outage"]
    pg_done = 0
    while not stop.wait(rng.uniform(3, 8)):
        kind = rng.choice(kinds)
        if pg_done < pg_restarts and stack.pg.can_restart() and rng.random() < 0.15:
            kind = "postgres_restart"
        t = time.monotonic()
        try:
            if kind == "worker_kill":
                detail = stack.kill_worker(rng)
            elif kind == "api_restart":
                stack.restart_api()
                detail = "api"
            elif kind == "s3_restart":
                stack.restart_s3(rng.uniform(1, 4))
                detail = "s3s-fs"
            elif kind == "sqs_outage":
                stack.restart_sqs(rng.uniform(1, 5))
                detail = "sqs proxy"
            else:
                pg_done += 1
                stack.restart_postgres(rng.uniform(1, 3))
                detail = "immediate stop + start"
        except Exception as e:  # noqa: BLE001 - a failed fault is reported and healed
            log(f"fault {kind} failed: {e}")
            stack.heal()
            continue
        faults[kind] += 1
        log(f"{kind:<17} {detail} ({time.monotonic() - t:.1f} s)")


def settle(stack, within, log):
    """Waits until nothing is queued, processing, in the outbox or the queue."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            (busy, outbox), = stack.pg.psql(
                "SELECT (SELECT COUNT(*) FROM media WHERE state IN ('queued','processing')), "
                "(SELECT COUNT(*) FROM outbox)")
            visible, hidden = stack.queue_counts()
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            log(f"settle: {e}")
            time.sleep(1)
            continue
        now = (int(busy), int(outbox), visible, hidden)
        if now != last:
            log(f"settle: media queued/processing {now[0]}, outbox {now[1]}, "
                f"queue visible {visible}, in flight {hidden}")
            last = now
        if now == (0, 0, 0, 0):
            return True
        time.sleep(1)
    return False


def verify(stack, ledger):
    """Counts what the server acknowledged against what the database and API hold."""
    base, pg = stack.base, stack.pg
    result = collections.OrderedDict()
    media = {row[0]: row for row in pg.psql("SELECT id, state, COALESCE(failure, '') FROM media")}
    acked = ledger.uploads
    lost_uploads = [m for m in acked if m not in media]
    unfinished = [m for m in acked if m in media and media[m][1] not in ("ready", "failed")]
    no_reason = [m for m in acked if m in media and media[m][1] == "failed" and not media[m][2].strip()]
    api_mismatch = 0
    for media_id, token in acked.items():
        status, body = http("GET", f"{base}/v1/media/{media_id}", token=token)
        db_state = media.get(media_id, (None, None))[1]
        if status != 200 or body.get("state") != db_state or (
                db_state == "failed" and not body.get("reason")):
            api_mismatch += 1
    result["uploads acknowledged"] = len(acked)
    result["uploads ready"] = sum(media[m][1] == "ready" for m in acked if m in media)
    result["uploads failed (with reason)"] = sum(
        media[m][1] == "failed" and bool(media[m][2].strip()) for m in acked if m in media)
    reasons = collections.Counter(media[m][2].split(":")[0][:60] for m in acked
                                  if m in media and media[m][1] == "failed")
    result["failure reasons"] = dict(reasons)

    post_rows = pg.psql("SELECT caption, id FROM posts WHERE caption LIKE 'chaos post %'")
    posts_by_caption = collections.defaultdict(list)
    for caption, post_id in post_rows:
        posts_by_caption[caption].append(post_id)
    lost_posts = [c for c, pid in ledger.posts.items()
                  if not posts_by_caption.get(c) or (pid and pid not in posts_by_caption[c])]
    dup_posts = [c for c, ids in posts_by_caption.items() if len(ids) > 1]
    result["posts acknowledged"] = len(ledger.posts)
    result["posts acknowledged by 409 on a retry"] = sum(pid is None for pid in ledger.posts.values())
    result["posts in database"] = len(post_rows)

    msg_rows = pg.psql("SELECT body, id FROM messages WHERE body LIKE 'chaos msg %'")
    msgs_by_body = collections.defaultdict(list)
    for body, msg_id in msg_rows:
        msgs_by_body[body].append(msg_id)
    lost_msgs = [t for t, mid in ledger.messages.items() if mid not in msgs_by_body.get(t, [])]
    dup_msgs = [t for t, ids in msgs_by_body.items() if len(ids) > 1]
    result["messages acknowledged"] = len(ledger.messages)
    result["messages in database"] = len(msg_rows)

    (stuck_media,), = pg.psql("SELECT COUNT(*) FROM media WHERE state IN ('queued','processing')")
    (outbox,), = pg.psql("SELECT COUNT(*) FROM outbox")
    visible, hidden = stack.queue_counts()
    dead, _ = stack.queue_counts(stack.dead_letter_url)
    (jobs,), = pg.psql("SELECT COUNT(*) FROM media WHERE state <> 'awaiting_upload'")
    result["jobs (media past upload)"] = int(jobs)
    result["dead-lettered messages"] = dead
    result["lost"] = len(lost_uploads) + len(lost_posts) + len(lost_msgs)
    result["duplicated"] = len(dup_posts) + len(dup_msgs)
    result["stuck"] = (len(unfinished) + int(stuck_media) + int(outbox) + visible + hidden)
    result["failed without reason"] = len(no_reason)
    result["API disagrees with database"] = api_mismatch
    details = {"lost uploads": lost_uploads, "lost posts": lost_posts, "lost messages": lost_msgs,
               "duplicated posts": dup_posts, "duplicated messages": dup_msgs,
               "unfinished uploads": unfinished, "failed without reason": no_reason,
               "queue": {"visible": visible, "in_flight": hidden, "outbox": int(outbox)}}
    return result, details


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__)
    sori, work, seconds = argv[1], argv[2], float(argv[3])
    seed = int(os.environ.get("CHAOS_SEED", str(int(time.time()))))
    settle_secs = float(os.environ.get("CHAOS_SETTLE_SECS", "240"))
    pg_restarts = int(os.environ.get("CHAOS_PG_RESTARTS", "3"))
    start = time.monotonic()

    def log(msg):
        print(f"[{time.monotonic() - start:7.1f}] {msg}", file=sys.stderr, flush=True)

    stack = Stack(sori, work, os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432"),
                  os.environ.get("CHAOS_DB", "sori_chaos"))
    ledger = Ledger()
    faults = collections.Counter()
    ok = False
    try:
        stack.start()
        log(f"stack up: api {stack.base}, {len(stack.workers)} workers, seed {seed}")
        stop_load, stop_chaos = threading.Event(), threading.Event()
        threads = [threading.Thread(target=uploader, args=(stack.base, ledger, stop_load, seed * 100 + i))
                   for i in range(UPLOADERS)]
        threads += [threading.Thread(target=chatter, args=(stack.base, ledger, stop_load, seed * 100 + 50 + i))
                    for i in range(CHAT_PAIRS)]
        for t in threads:
            t.start()
        chaos = threading.Thread(target=chaos_loop, args=(stack, stop_chaos, random.Random(seed),
                                                          faults, pg_restarts, log))
        chaos.start()
        time.sleep(seconds)
        stop_chaos.set()
        chaos.join()
        log("chaos over; load stops after its operations in flight")
        stop_load.set()
        for t in threads:
            t.join()
        stack.heal()
        settled = settle(stack, settle_secs, log)
        result, details = verify(stack, ledger)
        print(f"\nchaos run: {seconds:.0f} s of faults, seed {seed}, {os.cpu_count()} cores")
        print("faults:", ", ".join(f"{k} {v}" for k, v in sorted(faults.items())) or "none")
        for key, value in result.items():
            print(f"  {key:<38} {value}")
        retries = {k: v for k, v in sorted(ledger.counts.items())}
        print(f"  {'client retries / gave up':<38} {retries}")
        problems = {k: (len(v), v[:5]) for k, v in details.items() if v and k != "queue"}
        if problems or not settled:
            print("details:", problems, details["queue"])
        ok = settled and result["lost"] == 0 and result["duplicated"] == 0 and result["stuck"] == 0 \
            and result["failed without reason"] == 0 and result["API disagrees with database"] == 0
        print("RESULT", "ok" if ok else "FAILED")
    finally:
        # Whatever happened, PostgreSQL is left running (others share it).
        if not stack.pg.start():
            print("PostgreSQL is DOWN: start it with pg_ctlcluster", file=sys.stderr)
        stack.stop()
        stack.pg.drop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
