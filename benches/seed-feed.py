#!/usr/bin/env python3
"""Synthetic data for the feed load benchmark (benches/feed-load.sh).

    seed-feed.py generate DIR [--users N] [--posts N] [--tokens N] [--seed S]
        Writes one CSV per table into DIR (header row = column list, empty
        field = NULL) plus DIR/tokens.txt: the plain bearer tokens whose
        SHA-256 hex is in auth_tokens.csv, one per line.
    seed-feed.py load-sqlite DIR FILE
        Bulk-inserts those CSVs into the SQLite database FILE, whose schema
        `sori migrate` already created. (PostgreSQL loads them with \\copy.)
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
TABLES = ["users", "auth_tokens", "media", "posts", "post_tags", "follows", "likes"]


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
    write(args.dir, "users", ["id", "handle", "handle_lower", "display_name",
                              "password_hash", "created_at"], users)
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
            with open(os.path.join(args.dir, f"{table}.csv"), newline="") as f:
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
    c = sub.add_parser("cursors")
    c.add_argument("dir")
    c.add_argument("base_url")
    args = parser.parse_args()
    {"generate": generate, "load-sqlite": load_sqlite, "cursors": cursors}[args.command](args)


if __name__ == "__main__":
    main()
