#!/usr/bin/env python3
"""The combined load run of benches/combined-load.sh (standard library only).

  combined_load.py SORI_BIN WORK_DIR SECONDS

Starts the production stack of scripts/sori_stack.py (one `sori api`, two
`sori worker`s, PostgreSQL, S3, SQS) and, at once for SECONDS:

  * feed readers: closed loop of GET /v1/feed (page 1, and page 2 through the
    cursor page 1 gave) by followers of the posters;
  * posters: at a steady rate, POST /v1/media, PUT to the presigned URL,
    /complete, POST /v1/posts; a tracker polls each media until `ready`
    (upload → ready time);
  * chat: text messages over REST at a steady rate between pairs, each
    recipient holding a WebSocket; delivery latency is POST start →
    `message.new` on the recipient's socket;
  * a sampler reading the workers' /metrics (queue visible, in flight, jobs
    running) and the database's media backlog every 2 s.

Prints requests, errors and p50/p90/p99 per kind, the backlog over time, and
`RESULT errors=N`. Settings (environment): FEED_READERS (4), POST_RATE
(uploads per second, 1.0), CHAT_PAIRS (10), CHAT_RATE (messages per second,
20), PG_URL, COMBINED_DB (sori_combined).
"""

import base64
import collections
import json
import os
import random
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from sori_stack import Stack, http, percentile  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(REPO, "fixtures", "speech-mono-16k.m4a")
CHAT_SENDERS = 4


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency = collections.defaultdict(list)
        self.errors = collections.Counter()
        self.error_samples = []

    def ok(self, kind, seconds):
        with self.lock:
            self.latency[kind].append(seconds * 1000)

    def error(self, kind, what):
        with self.lock:
            self.errors[kind] += 1
            if len(self.error_samples) < 10:
                self.error_samples.append(f"{kind}: {what}")


def timed(stats, kind, want, method, url, **kw):
    """One measured request; the body if the status is one of `want`, else None."""
    t = time.monotonic()
    try:
        status, body = http(method, url, **kw)
    except OSError as e:
        stats.error(kind, e)
        return None
    if status not in want:
        stats.error(kind, f"{status} {body}")
        return None
    stats.ok(kind, time.monotonic() - t)
    return body if body is not None else True


def sign_up(base, prefix):
    status, body = http("POST", f"{base}/v1/auth/signup", {
        "handle": f"{prefix}_{uuid.uuid4().hex[:10]}", "password": "combined-load-1",
        "display_name": prefix})
    if status != 201:
        raise RuntimeError(f"signup: {status} {body}")
    return body


# ------------------------------------------------------------------ WebSocket

class WebSocket:
    """The client side of RFC 6455, just enough to read text events."""

    def __init__(self, base, token):
        u = urllib.parse.urlparse(base)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /v1/ws HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise OSError("socket closed during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise OSError(f"no upgrade: {head.splitlines()[0]!r}")
        self.buf = head.split(b"\r\n\r\n", 1)[1]
        self.sock.settimeout(None)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, opcode, payload):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def recv_text(self):
        """The next text message; answers pings on the way."""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                raise OSError("closed by the server")
            elif opcode == 0x1:
                return payload.decode()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------- load

def feed_reader(base, tokens, stats, stop, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        token = rng.choice(tokens)
        page = timed(stats, "feed", (200,), "GET", f"{base}/v1/feed?limit=20", token=token)
        cursor = page.get("next_cursor") if isinstance(page, dict) else None
        if cursor and rng.random() < 0.3:
            timed(stats, "feed_page2", (200,), "GET",
                  f"{base}/v1/feed?limit=20&cursor={urllib.parse.quote(cursor)}", token=token)


def post_one(base, token, data, stats, pending):
    created = timed(stats, "media_create", (201,), "POST", f"{base}/v1/media",
                    body={"content_type": "audio/mp4", "size_bytes": len(data)}, token=token)
    if not created:
        return
    up = created["upload"]
    if not timed(stats, "upload_put", (200, 204), up["method"], up["url"],
                 headers=up["headers"], data=data):
        return
    media_id = created["id"]
    if not timed(stats, "complete", (202,), "POST", f"{base}/v1/media/{media_id}/complete",
                 body={}, token=token):
        return
    with pending["lock"]:
        pending["items"][media_id] = (token, time.monotonic())
    timed(stats, "post", (201,), "POST", f"{base}/v1/posts",
          body={"media_id": media_id, "caption": "combined load #load"}, token=token)


def poster(base, tokens, rate, stats, stop, pending, seed):
    rng = random.Random(seed)
    with open(CLIP, "rb") as f:
        data = f.read()
    interval, due = 1.0 / rate, time.monotonic()
    while not stop.is_set():
        post_one(base, rng.choice(tokens), data, stats, pending)
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))


def tracker(base, stats, stop, pending):
    """Polls unfinished media; records complete → ready."""
    while not (stop.is_set() and not pending["items"]):
        with pending["lock"]:
            items = list(pending["items"].items())
        for media_id, (token, t0) in items:
            try:
                status, body = http("GET", f"{base}/v1/media/{media_id}", token=token)
            except OSError as e:
                stats.error("media_get", e)
                continue
            state = body.get("state") if status == 200 else None
            if state in ("ready", "failed"):
                with pending["lock"]:
                    del pending["items"][media_id]
                if state == "ready":
                    stats.ok("complete_to_ready", time.monotonic() - t0)
                else:
                    stats.error("complete_to_ready", body.get("reason"))
        if stop.is_set() and time.monotonic() > pending["deadline"]:
            for _ in pending["items"]:
                stats.error("complete_to_ready", "not ready when the run ended")
            return
        time.sleep(0.25)


def receiver(base, person, sent, stats, stop):
    """Holds the person's socket; matches `message.new` to its send time."""
    ws = WebSocket(base, person["token"])
    person["ws_ready"].set()
    try:
        while True:
            event = json.loads(ws.recv_text())
            if event.get("type") != "message.new":
                continue
            data = event["data"]
            if data.get("sender_id") == person["user_id"]:
                continue
            with sent["lock"]:
                t0 = sent["items"].pop(data.get("client_id"), None)
            if t0 is not None:
                stats.ok("chat_delivery", time.monotonic() - t0)
    except OSError:
        if not stop.is_set():
            stats.error("chat_socket", "socket closed during the run")
    finally:
        ws.close()


def chatter(base, pairs, rate, stats, stop, sent, seed):
    rng = random.Random(seed)
    interval, due = 1.0 / rate, time.monotonic()
    while not stop.is_set():
        a, b, room = rng.choice(pairs)
        sender = rng.choice([a, b])
        client_id = uuid.uuid4().hex
        with sent["lock"]:
            sent["items"][client_id] = time.monotonic()
        timed(stats, "chat_send", (201,), "POST", f"{base}/v1/chats/{room}/messages",
              body={"kind": "text", "text": "hello", "client_id": client_id}, token=sender["token"])
        due += interval
        time.sleep(max(0.0, due - time.monotonic()))


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def sampler(stack, stop, samples, t_start):
    while not stop.wait(2):
        row = {"t": round(time.monotonic() - t_start)}
        for w in stack.workers:
            try:
                text = http_text(f"http://127.0.0.1:{w.port}/metrics")
            except OSError:
                continue
            row["visible"] = metric(text, "sori_queue_visible_messages")
            row["in_flight"] = metric(text, "sori_queue_in_flight_messages")
            row["running"] = row.get("running", 0) + metric(text, "sori_jobs_running")
        try:
            (busy,), = stack.pg.psql("SELECT COUNT(*) FROM media WHERE state IN ('queued','processing')")
            row["media_unfinished"] = int(busy)
        except RuntimeError:
            pass
        samples.append(row)


def http_text(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__)
    sori, work, seconds = argv[1], argv[2], float(argv[3])
    readers = int(os.environ.get("FEED_READERS", "4"))
    post_rate = float(os.environ.get("POST_RATE", "1.0"))
    chat_pairs = int(os.environ.get("CHAT_PAIRS", "10"))
    chat_rate = float(os.environ.get("CHAT_RATE", "20"))
    stack = Stack(sori, work, os.environ.get("PG_URL", "postgres://postgres@127.0.0.1:5432"),
                  os.environ.get("COMBINED_DB", "sori_combined"))
    stats, seeding = Stats(), Stats()
    try:
        stack.start()
        base = stack.base
        print(f"== stack up at {base}; seeding", file=sys.stderr)
        posters = [sign_up(base, "poster") for _ in range(4)]
        followers = [sign_up(base, "reader") for _ in range(20)]
        for f in followers:
            for p in posters:
                timed(seeding, "follow", (200, 201, 204), "PUT",
                      f"{base}/v1/users/{p['user_id']}/follow", token=f["token"])
        with open(CLIP, "rb") as fh:
            clip = fh.read()
        seed_pending = {"lock": threading.Lock(), "items": {}}
        for i in range(40):
            post_one(base, posters[i % 4]["token"], clip, seeding, seed_pending)
        pairs = []
        for _ in range(chat_pairs):
            a, b = sign_up(base, "chat_a"), sign_up(base, "chat_b")
            status, room = http("POST", f"{base}/v1/chats", {"user_id": b["user_id"]}, a["token"])
            pairs.append((a, b, room["id"]))
        if seeding.errors:
            raise RuntimeError(f"seeding failed: {seeding.error_samples}")
        stop = threading.Event()
        sent = {"lock": threading.Lock(), "items": {}}
        pending = {"lock": threading.Lock(), "items": {}, "deadline": 0}
        samples = []
        threads = []
        for a, b, _ in pairs:
            for person in (a, b):
                person["ws_ready"] = threading.Event()
                t = threading.Thread(target=receiver, args=(base, person, sent, stats, stop), daemon=True)
                t.start()
                person["ws_ready"].wait(10)
        poster_tokens = [p["token"] for p in posters]
        reader_tokens = [f["token"] for f in followers]
        print(f"== {seconds:.0f} s: {readers} feed readers, {post_rate}/s uploads+posts, "
              f"{chat_rate}/s chat messages over {chat_pairs} pairs", file=sys.stderr)
        t_start = time.monotonic()
        threads += [threading.Thread(target=feed_reader, args=(base, reader_tokens, stats, stop, i))
                    for i in range(readers)]
        threads += [threading.Thread(target=poster, args=(base, poster_tokens, post_rate, stats, stop,
                                                          pending, 7))]
        # Several senders, so one slow answer does not hold back the offered rate.
        threads += [threading.Thread(target=chatter, args=(base, pairs, chat_rate / CHAT_SENDERS, stats,
                                                           stop, sent, 9 + i))
                    for i in range(CHAT_SENDERS)]
        threads += [threading.Thread(target=tracker, args=(base, stats, stop, pending))]
        threads += [threading.Thread(target=sampler, args=(stack, stop, samples, t_start))]
        for t in threads:
            t.start()
        time.sleep(seconds)
        pending["deadline"] = time.monotonic() + 60
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t_start
        time.sleep(2)  # late deliveries
        with sent["lock"]:
            for _ in sent["items"]:
                stats.error("chat_delivery", "message.new never arrived")
        report(stats, samples, elapsed, readers, post_rate, chat_rate, chat_pairs)
        total_errors = sum(stats.errors.values())
        print(f"RESULT errors={total_errors}")
        return 0 if total_errors == 0 else 1
    finally:
        stack.stop()
        stack.pg.drop()


def report(stats, samples, elapsed, readers, post_rate, chat_rate, chat_pairs):
    print(f"\ncombined load: {elapsed:.0f} s, {os.cpu_count()} cores, production mode "
          f"(1 api, 2 workers × 1 slot, PostgreSQL, s3s-fs, moto SQS); {readers} feed readers, "
          f"{post_rate}/s uploads, {chat_rate}/s chat over {chat_pairs} pairs")
    print(f"{'kind':<18} {'count':>7} {'per s':>7} {'errors':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    kinds = sorted(set(stats.latency) | set(stats.errors))
    for kind in kinds:
        values = sorted(stats.latency[kind])
        print(f"{kind:<18} {len(values):>7} {len(values) / elapsed:>7.1f} {stats.errors[kind]:>6} "
              f"{percentile(values, 0.5):>8.1f} {percentile(values, 0.9):>8.1f} {percentile(values, 0.99):>8.1f}")
    requests = sum(len(v) for k, v in stats.latency.items() if k not in ("chat_delivery", "complete_to_ready"))
    errors = sum(stats.errors.values())
    print(f"requests {requests}, errors {errors} ({100 * errors / max(1, requests + errors):.3f} %)")
    if stats.error_samples:
        print("first errors:", stats.error_samples)
    print("worker backlog (every 10 s): t  queue_visible  in_flight  jobs_running  media_unfinished")
    for row in samples[::5]:
        print(f"  {row['t']:>4} s  {row.get('visible', 0):>6.0f} {row.get('in_flight', 0):>9.0f} "
              f"{row.get('running', 0):>12.0f} {row.get('media_unfinished', 0):>16}")
    if samples:
        print(f"backlog max: visible {max(r.get('visible', 0) for r in samples):.0f}, "
              f"media unfinished {max(r.get('media_unfinished', 0) for r in samples)}")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
