#!/usr/bin/env python3
"""Synthetic data for the feed load benchmark (benches/feed-load.sh).

    seed-feed.py generate DIR [--users N] [--posts N] [--tokens N] [--seed S]
        Writes one CSV per table into DIR (header row = column list, empty
        field = NULL) plus DIR/tokens.txt: the plain bearer tokens whose
        SHA-256 hex is in auth_tokens.csv, one per line.
    seed-feed.py load-sqlite DIR FILE
        Bulk-inserts those CSVs into the SQLite database FILE, whose schema
        `sori migrate` already created. (PostgreSQL loads them with \\copy.)
    seed-feed.py population DIR [--users N] [--posts N] [--requests N] [--seed S]
        A whole population for benches/feed-scale.sh (100 000 users by
        default): the tables above plus `timelines` as fan-out on write
        leaves them, a token per user, DIR/requests.txt (a mixed stream of
        feed reads, likes, follows and posts by viewers drawn from everyone,
        weighted by activity) and DIR/fanout.txt (posts by authors of
        chosen follower counts, to time what a post's fan-out costs).
    seed-feed.py fanout DIR BASE_URL
        Makes the posts of DIR/fanout.txt one at a time and prints the median
        time per follower count.
    seed-feed.py cursors DIR BASE_URL
        Fetches page 1 of GET /v1/feed for each token in DIR/tokens.txt and
        writes DIR/page2.txt: "TOKEN NEXT_CURSOR" per token that has a page 2.

The data is deterministic for a seed, so both backends get the same rows:
- users: N (default 10 000), created before any post;
- follows: each user follows 20-199 others (log-uniform, so ~78 on average),
  picked by a Zipf-like popularity (weight 1/rank^0.9): a few accounts are
  followed by most users, the long tail by a handful;
- posts: N (default 100 000) over the last 60 days, authors picked by a
  Pareto-distributed activity, each with its own media row in state 'ready'
  (duration, 48 waveform bars), a caption and 0-3 tags;
- likes: 2 per post on average, popular posts more; like_count matches;
- tokens: N (default 500) for random users, valid for 30 days.
"""

import argparse
import base64
import csv
import hashlib
import json
import math
import os
import random
import sqlite3
import sys
import time
import urllib.request
import uuid

DAY_MS = 86_400_000
TAGS = ["music", "news", "story", "poem", "jokes", "tech", "sports", "food",
        "travel", "morning", "night", "rant", "podcast", "asmr", "language", "dogs"]
TABLES = ["users", "auth_tokens", "media", "posts", "post_tags", "follows", "likes", "timelines"]


def uuid7(ms, rng):
    """A UUIDv7 string for Unix time `ms`, like the server's ids."""
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
    return str(uuid.UUID(int=value))


def write(out, table, columns, rows):
    with open(os.path.join(out, f"{table}.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)


def gen_users(rng, n, t0):
    users = []
    for i in range(n):
        ms = t0 - 120 * DAY_MS + i * 1000
        users.append((uuid7(ms, rng), f"user{i:05d}", f"user{i:05d}", f"User {i}",
                      "!seeded-no-login", ms))
    return users


def gen_follows(rng, ids, t0):
    """Each user follows 20-199 others, chosen by Zipf-like popularity."""
    ranked = ids[:]
    rng.shuffle(ranked)
    cum, total = [], 0.0
    for r in range(len(ranked)):
        total += 1.0 / (r + 1) ** 0.9
        cum.append(total)
    rows = []
    for follower in ids:
        k = int(20 * 10 ** rng.random())
        chosen = set()
        while len(chosen) < k:
            for f in rng.choices(ranked, cum_weights=cum, k=k - len(chosen)):
                if f != follower:
                    chosen.add(f)
        for f in sorted(chosen):
            rows.append((follower, f, t0 - rng.randrange(90 * DAY_MS)))
    return rows


def gen_posts(rng, ids, n, t0):
    """Posts, their media and tags, over the last 60 days."""
    activity = [rng.paretovariate(1.5) for _ in ids]
    authors = rng.choices(ids, weights=activity, k=n)
    times = sorted(t0 - rng.randrange(60 * DAY_MS) for _ in range(n))
    media, posts, tags = [], [], []
    for author, ms in zip(authors, times):
        media_id = uuid7(ms - 5000, rng)
        post_id = uuid7(ms, rng)
        duration = rng.randrange(3000, 60000)
        bars = json.dumps([rng.randrange(32) for _ in range(48)], separators=(",", ":"))
        media.append((media_id, author, "ready", "audio/mp4", rng.randrange(50_000, 900_000),
                      f"uploads/{media_id}", f"media/{media_id}/1/", duration, bars, "{}",
                      ms - 5000, ms - 1000))
        post_tags = sorted(set(rng.sample(TAGS, rng.randrange(4))))
        caption = " ".join(f"#{t}" for t in post_tags) or "a voice note"
        posts.append([post_id, author, media_id, caption, json.dumps(post_tags), 0, 0, ms])
        tags.extend((t, post_id, ms) for t in post_tags)
    return media, posts, tags


def gen_likes(rng, posts, ids, t0):
    """About two likes per post, skewed towards some posts; updates like_count."""
    weights = [rng.paretovariate(1.2) for _ in posts]
    seen = set()
    for i in rng.choices(range(len(posts)), weights=weights, k=2 * len(posts)):
        seen.add((i, rng.choice(ids)))
    rows = []
    for i, user in sorted(seen):
        posts[i][5] += 1
        rows.append((posts[i][0], user, min(t0, posts[i][7] + rng.randrange(DAY_MS))))
    return rows


def gen_tokens(rng, ids, n, t0):
    plain, rows = [], []
    for user in rng.sample(ids, n):
        token = base64.urlsafe_b64encode(rng.randbytes(32)).rstrip(b"=").decode()
        plain.append(token)
        rows.append((hashlib.sha256(token.encode()).hexdigest(), user, t0, t0 + 30 * DAY_MS))
    return plain, rows


def generate(args):
    rng = random.Random(args.seed)
    t0 = int(time.time() * 1000)
    os.makedirs(args.dir, exist_ok=True)
    users = gen_users(rng, args.users, t0)
    ids = [u[0] for u in users]
    # Accounts from before home timelines (none are written here): their
    # feeds read by the merge over followed authors.
    write(args.dir, "users", ["id", "handle", "handle_lower", "display_name",
                              "password_hash", "created_at", "timeline_floor_at"],
          [u + (t0,) for u in users])
    follows = gen_follows(rng, ids, t0)
    write(args.dir, "follows", ["follower_id", "followee_id", "created_at"], follows)
    media, posts, tags = gen_posts(rng, ids, args.posts, t0)
    write(args.dir, "media", ["id", "owner_id", "state", "content_type", "size_bytes",
                              "original_key", "output_prefix", "duration_ms", "bars",
                              "report", "created_at", "updated_at"], media)
    likes = gen_likes(rng, posts, ids, t0)
    write(args.dir, "posts", ["id", "author_id", "media_id", "caption", "tags",
                              "like_count", "comment_count", "created_at"], posts)
    write(args.dir, "post_tags", ["tag", "post_id", "created_at"], tags)
    write(args.dir, "likes", ["post_id", "user_id", "created_at"], likes)
    plain, token_rows = gen_tokens(rng, ids, args.tokens, t0)
    write(args.dir, "auth_tokens", ["token_hash", "user_id", "created_at", "expires_at"], token_rows)
    with open(os.path.join(args.dir, "tokens.txt"), "w") as f:
        f.write("\n".join(plain) + "\n")
    print(f"generated {len(users)} users, {len(follows)} follows, {len(posts)} posts, "
          f"{len(tags)} tags, {len(likes)} likes, {len(plain)} tokens", file=sys.stderr)


def load_sqlite(args):
    db = sqlite3.connect(args.file)
    db.execute("PRAGMA foreign_keys = ON")
    with db:
        for table in TABLES:
            path = os.path.join(args.dir, f"{table}.csv")
            if not os.path.exists(path):
                continue
            with open(path, newline="") as f:
                reader = csv.reader(f)
                columns = next(reader)
                marks = ",".join("?" * len(columns))
                sql = f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})"
                db.executemany(sql, ([v if v != "" else None for v in row] for row in reader))
    db.execute("ANALYZE")
    db.close()


def cursors(args):
    with open(os.path.join(args.dir, "tokens.txt")) as f:
        tokens = [t for t in f.read().split() if t]
    lines = []
    for token in tokens:
        req = urllib.request.Request(f"{args.base_url}/v1/feed",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            page = json.load(resp)
        if page.get("next_cursor"):
            lines.append(f"{token} {page['next_cursor']}")
    with open(os.path.join(args.dir, "page2.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} of {len(tokens)} tokens have a page 2", file=sys.stderr)


HALF_LIFE_MS = 6 * 3_600_000
TIMELINE_LENGTH = 800
FAN_OUT_BUCKETS = [0, 10, 100, 1000, 5000]


def zipf_cum(n, s):
    """Cumulative weights 1/rank^s for ranks 1..n."""
    cum, total = [], 0.0
    for r in range(n):
        total += 1.0 / (r + 1) ** s
        cum.append(total)
    return cum


def pop_follows(rng, ids, t0):
    """Follow counts Pareto-distributed (median ~14, a few up to 2000),
    followees by Zipf popularity (1/rank^0.9)."""
    ranked = ids[:]
    rng.shuffle(ranked)
    cum = zipf_cum(len(ranked), 0.9)
    rows, followers = [], {}
    for follower in ids:
        k = min(2000, int(8 * rng.paretovariate(1.2)))
        chosen = set(f for f in rng.choices(ranked, cum_weights=cum, k=k) if f != follower)
        for f in chosen:
            rows.append((follower, f, t0 - rng.randrange(90 * DAY_MS)))
            followers.setdefault(f, []).append(follower)
    return rows, followers, ranked


def pop_timelines(posts, followers, fan_in):
    """The rows fan-out on write leaves, newest first, each user's kept to
    TIMELINE_LENGTH as trimming keeps them, and the floors trimming raised:
    user -> (created_at, post id) of their oldest kept row."""
    kept, rows, oldest, floors = {}, [], {}, {}
    for post in sorted(posts, key=lambda p: (p[7], p[0]), reverse=True):
        author = post[1]
        readers = [author] if author in fan_in else [author] + followers.get(author, [])
        for user in readers:
            n = kept.get(user, 0)
            if n < TIMELINE_LENGTH:
                kept[user] = n + 1
                rows.append((user, post[7], post[0], author))
                oldest[user] = (post[7], post[0])
            else:
                floors[user] = oldest[user]
    return rows, floors


def pop_spare_media(rng, owner, t0, media):
    """An uploaded, processed clip not yet posted, for a bench post; its id."""
    media_id = uuid7(t0 - 60_000, rng)
    bars = json.dumps([rng.randrange(32) for _ in range(48)], separators=(",", ":"))
    media.append((media_id, owner, "ready", "audio/mp4", 100_000, f"uploads/{media_id}",
                  f"media/{media_id}/1/", 20_000, bars, "{}", t0 - 60_000, t0 - 50_000))
    return media_id


def pop_requests(rng, args, ids, tokens, ranked, posts, media):
    """The mixed stream: per 100 requests 92 feed reads, 5 likes, 2 follows,
    1 post, each by a viewer drawn by how often people open the app."""
    visits = [rng.paretovariate(1.2) for _ in ids]
    viewers = rng.choices(range(len(ids)), weights=visits, k=args.requests)
    recent = [p[0] for p in posts[-20_000:]]
    cum = zipf_cum(len(ranked), 0.9)
    lines = []
    for v in viewers:
        kind = rng.randrange(100)
        if kind < 92:
            lines.append(f"F {tokens[v]}")
        elif kind < 97:
            lines.append(f"L {tokens[v]} {rng.choice(recent)}")
        elif kind < 99:
            followee = rng.choices(ranked, cum_weights=cum, k=1)[0]
            lines.append(f"W {tokens[v]} {followee}")
        else:
            lines.append(f"P {tokens[v]} {pop_spare_media(rng, ids[v], args.t0, media)}")
    return lines


def pop_fanout(rng, args, ids, tokens, followers, media):
    """Ten posts by authors near each follower count, and by the most
    followed: "BUCKET FOLLOWERS TOKEN MEDIA" lines."""
    by_count = sorted(range(len(ids)), key=lambda i: len(followers.get(ids[i], [])))
    counts = [len(followers.get(ids[i], [])) for i in by_count]
    lines = []
    for target in FAN_OUT_BUCKETS + [counts[-1]]:
        start = min(range(len(counts)), key=lambda i: abs(counts[i] - target))
        for i in by_count[start:start + 10]:
            lines.append(f"{target} {len(followers.get(ids[i], []))} {tokens[i]} "
                         f"{pop_spare_media(rng, ids[i], args.t0, media)}")
    return lines


def population(args):
    rng = random.Random(args.seed)
    args.t0 = t0 = int(time.time() * 1000)
    os.makedirs(args.dir, exist_ok=True)
    users = gen_users(rng, args.users, t0)
    ids = [u[0] for u in users]
    follows, followers, ranked = pop_follows(rng, ids, t0)
    fan_in = {a for a, f in followers.items() if len(f) > args.max_fan_out}
    # A follow of a fan-in author carries its mark (follows_fan_in).
    write(args.dir, "follows", ["follower_id", "followee_id", "created_at", "fan_in"],
          [f + (int(f[1] in fan_in),) for f in follows])
    media, posts, tags = gen_posts(rng, ids, args.posts, t0)
    likes = gen_likes(rng, posts, ids, t0)
    for p in posts:
        p.append(int(p[1] in fan_in))
        p.append(p[7] + int(HALF_LIFE_MS * math.log2(1 + 3 * p[5])))
    write(args.dir, "posts", ["id", "author_id", "media_id", "caption", "tags", "like_count",
                              "comment_count", "created_at", "fan_in", "trend_key"], posts)
    write(args.dir, "post_tags", ["tag", "post_id", "created_at"], tags)
    write(args.dir, "likes", ["post_id", "user_id", "created_at"], likes)
    timelines, floors = pop_timelines(posts, followers, fan_in)
    if args.no_timelines:
        # Every account as if from before timelines: the feed merges.
        timelines, floors = [], {u: (t0, "0") for u in ids}
    else:
        write(args.dir, "timelines", ["user_id", "created_at", "post_id", "author_id"], timelines)
    write(args.dir, "users", ["id", "handle", "handle_lower", "display_name", "password_hash",
                              "created_at", "fan_in", "timeline_floor_at", "timeline_floor_id"],
          # Floor (0, "0") is the default (0, ''): an empty field would load as NULL.
          [u + (int(u[0] in fan_in),) + floors.get(u[0], (0, "0")) for u in users])
    tokens, token_rows = gen_tokens(rng, ids, len(ids), t0)
    by_user = {row[1]: tok for tok, row in zip(tokens, token_rows)}
    tokens = [by_user[i] for i in ids]
    write(args.dir, "auth_tokens", ["token_hash", "user_id", "created_at", "expires_at"], token_rows)
    with open(os.path.join(args.dir, "requests.txt"), "w") as f:
        f.write("\n".join(pop_requests(rng, args, ids, tokens, ranked, posts, media)) + "\n")
    with open(os.path.join(args.dir, "fanout.txt"), "w") as f:
        f.write("\n".join(pop_fanout(rng, args, ids, tokens, followers, media)) + "\n")
    write(args.dir, "media", ["id", "owner_id", "state", "content_type", "size_bytes",
                              "original_key", "output_prefix", "duration_ms", "bars",
                              "report", "created_at", "updated_at"], media)
    print(f"population: {len(users)} users ({len(fan_in)} read by fan-in), {len(follows)} follows, "
          f"{len(posts)} posts, {len(likes)} likes, {len(timelines)} timeline rows, "
          f"{args.requests} requests", file=sys.stderr)


def fanout(args):
    """Times each post of fanout.txt (POST /v1/posts, one at a time)."""
    times, followers = {}, {}
    with open(os.path.join(args.dir, "fanout.txt")) as f:
        lines = [line.split() for line in f if line.strip()]
    for bucket, count, token, media_id in lines:
        body = json.dumps({"media_id": media_id, "caption": "fan-out"}).encode()
        req = urllib.request.Request(f"{args.base_url}/v1/posts", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
        start = time.perf_counter()
        with urllib.request.urlopen(req, timeout=60) as resp:
            resp.read()
        times.setdefault(int(bucket), []).append(1000 * (time.perf_counter() - start))
        followers.setdefault(int(bucket), []).append(int(count))
    for bucket in sorted(times):
        ms, counts = sorted(times[bucket]), followers[bucket]
        print(f"post by an author of {min(counts)}-{max(counts)} followers: "
              f"median {ms[len(ms) // 2]:7.2f} ms, max {ms[-1]:7.2f} ms over {len(ms)} posts")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir")
    g.add_argument("--users", type=int, default=10_000)
    g.add_argument("--posts", type=int, default=100_000)
    g.add_argument("--tokens", type=int, default=500)
    g.add_argument("--seed", type=int, default=5)
    s = sub.add_parser("load-sqlite")
    s.add_argument("dir")
    s.add_argument("file")
    p = sub.add_parser("population")
    p.add_argument("dir")
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--posts", type=int, default=200_000)
    p.add_argument("--requests", type=int, default=600_000)
    p.add_argument("--max-fan-out", type=int, default=5000)
    p.add_argument("--no-timelines", action="store_true",
                   help="no timelines, every floor now: the feed reads by the merge (to compare)")
    p.add_argument("--seed", type=int, default=22)
    o = sub.add_parser("fanout")
    o.add_argument("dir")
    o.add_argument("base_url")
    c = sub.add_parser("cursors")
    c.add_argument("dir")
    c.add_argument("base_url")
    args = parser.parse_args()
    commands = {"generate": generate, "load-sqlite": load_sqlite, "cursors": cursors,
                "population": population, "fanout": fanout}
    commands[args.command](args)


if __name__ == "__main__":
    main()
