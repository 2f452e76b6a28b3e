#!/usr/bin/env python3
"""A day of uploads with meal-time peaks, through a worker pool scaled the way
deploy/k8s/keda-scaledobject.yaml scales it: a discrete-event simulation.

Uploads arrive as a Poisson process whose rate follows a day profile (night,
then peaks at breakfast, lunch and dinner; lunch LUNCH_PEAK times the night
rate by default). Each upload is one job whose time on one worker slot is
drawn from the job-time distribution: by default a clip length from a
log-normal of voice posts (median 25 s, 1 % over 3 min, capped at the 15 min
limit) times the measured cost per second of audio per slot on a busy 2-core
worker (0.6 s for a 30 s clip, docs/SCALING.md), plus a fixed start-up cost;
or, with --job-times FILE, measured ones: a JSON list of job seconds (from
the `sori_job_duration_seconds` histogram, say) sampled at random, or the
output of `sori bench --json` over a corpus, whose per-file job time per
second of audio is sampled and applied to the drawn clip length (plus the
start-up cost: `sori bench` times the job in memory, without the store).

The autoscaler is KEDA's aws-sqs-queue scaler with the manifest's HPA
behaviour: every POLL seconds, desired = ceil(backlog / QUEUE_LENGTH) within
[MIN, MAX], where backlog counts waiting and running jobs; scale up at most
doubling per 30 s, scale down only to the highest desired count of the last
300 s and by at most half per minute. A new pod takes START seconds before it
takes jobs; a removed pod is an idle one when there is one, else a busy one
whose jobs start over elsewhere (their message comes back). Each pod has
SLOTS job slots.

Prints, per setting, p50 and p99 of upload-to-ready (all day and at lunch,
11:30-13:30) and worker-minutes per day (pods counted from their start).

  benches/lunch_spike.py                      # the settings table of docs/SCALING.md
  benches/lunch_spike.py --uploads 50000 --settings 10:15:40
  benches/lunch_spike.py --job-times times.json
"""

import argparse
import heapq
import json
import math
import random

DAY = 86_400.0
LUNCH = (11.5 * 3600, 13.5 * 3600)


def day_profile(t, lunch_peak):
    """Relative upload rate at second t of the day: 1 at night, with Gaussian
    peaks at 8:00 (x4), 12:30 (x lunch_peak) and 20:00 (x6)."""
    hour = t / 3600.0

    def bump(center, width, height):
        return (height - 1.0) * math.exp(-0.5 * ((hour - center) / width) ** 2)

    return 1.0 + bump(8.0, 0.75, 4.0) + bump(12.5, 0.6, lunch_peak) + bump(20.0, 1.2, 6.0)


def arrivals(uploads, lunch_peak, rng):
    """Upload times over one day: a thinned Poisson process with
    `uploads` expected arrivals."""
    step = 60.0
    mean_rel = sum(day_profile(s * step, lunch_peak) for s in range(int(DAY / step))) / (DAY / step)
    base = uploads / DAY / mean_rel
    peak = base * max(day_profile(s * step, lunch_peak) for s in range(int(DAY / step)))
    t, out = 0.0, []
    while True:
        t += rng.expovariate(peak)
        if t >= DAY:
            return out
        if rng.random() < base * day_profile(t, lunch_peak) / peak:
            out.append(t)


def job_time_sampler(path, rng):
    """Seconds of one job on one slot."""
    startup = 0.05
    rates = [0.6 / 30.0]
    if path:
        with open(path) as f:
            measured = json.load(f)
        if isinstance(measured, dict):
            # `sori bench --json`: seconds of job per second of audio, per file.
            rates = [b["job_ms"] / 1000.0 / b["duration_s"]
                     for b in measured.get("files", []) if b.get("duration_s", 0) > 0]
        else:
            times = [float(x) for x in measured]
            if not times:
                raise SystemExit(f"{path}: no job times")
            return lambda: rng.choice(times)
        if not rates:
            raise SystemExit(f"{path}: no files with a duration")

    def sample():
        clip = min(900.0, max(1.0, rng.lognormvariate(math.log(25.0), 0.8)))
        return startup + clip * rng.choice(rates)

    return sample


class Pool:
    """Pods, their slots, the queue and the scaler's state."""

    def __init__(self, slots, start, min_pods, now):
        self.slots = slots
        self.start = start
        self.pods = {}  # id -> {"ready_at", "running": {job: end}, "born"}
        self.next_id = 0
        self.queue = []  # FIFO of (job, arrival)
        self.qhead = 0
        self.pod_seconds = 0.0
        self.history = []  # (time, desired) for the scale-down window
        for _ in range(min_pods):
            self.add(now, ready=True)

    def add(self, now, ready=False):
        self.pods[self.next_id] = {"ready_at": now if ready else now + self.start, "running": {}, "born": now}
        self.next_id += 1

    def waiting(self):
        return len(self.queue) - self.qhead

    def backlog(self):
        return self.waiting() + sum(len(p["running"]) for p in self.pods.values())


def simulate(args, queue_length, poll, start, seed):
    rng = random.Random(seed)
    times = arrivals(args.uploads, args.lunch_peak, rng)
    job_time = job_time_sampler(args.job_times, rng)
    pool = Pool(args.slots, start, args.min_pods, 0.0)
    events = []  # (time, order, kind, data)
    order = 0

    def push(t, kind, data=None):
        nonlocal order
        order += 1
        heapq.heappush(events, (t, order, kind, data))

    for i, t in enumerate(times):
        push(t, "arrive", i)
    push(0.0, "poll")
    arrival_of = {}
    done = {}  # job -> (arrival, ready)
    ends = {}  # job -> (pod, end) of its current run
    last_scale_up = -1e9
    last_scale_down = -1e9

    def dispatch(now):
        if not pool.waiting():
            return
        for pid, pod in pool.pods.items():
            if pod["ready_at"] > now:
                continue
            while len(pod["running"]) < pool.slots and pool.waiting():
                job = pool.queue[pool.qhead][0]
                pool.qhead += 1
                end = now + job_time()
                pod["running"][job] = end
                ends[job] = (pid, end)
                push(end, "finish", (job, pid, end))

    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > DAY * 1.05:
            break
        if kind == "arrive":
            arrival_of[data] = now
            pool.queue.append((data, now))
        elif kind == "finish":
            job, pid, end = data
            pod = pool.pods.get(pid)
            if pod is None or pod["running"].get(job) != end:
                continue  # the pod was removed and the job started over
            del pod["running"][job]
            done[job] = (arrival_of[job], now)
        elif kind == "pod_ready":
            pass
        elif kind == "poll":
            desired = math.ceil(pool.backlog() / queue_length) if pool.backlog() else 0
            desired = max(args.min_pods, min(args.max_pods, desired))
            pool.history.append((now, desired))
            pool.history = [(t, d) for t, d in pool.history if t > now - 300.0]
            have = len(pool.pods)
            if desired > have and now - last_scale_up >= 30.0:
                target = min(desired, max(have * 2, have + 1))
                for _ in range(target - have):
                    pool.add(now)
                    push(now + start, "pod_ready")
                last_scale_up = now
            else:
                floor = max(d for _, d in pool.history)
                if floor < have and now - last_scale_down >= 60.0:
                    target = max(floor, math.ceil(have / 2))
                    remove(pool, have - target, now)
                    last_scale_down = now
            if now < DAY:
                push(now + poll, "poll")
        dispatch(now)
        if kind in ("arrive", "poll") and not events:
            break
    pool.pod_seconds += sum(max(0.0, min(now, DAY) - p["born"]) for p in pool.pods.values())

    def stats(select):
        waits = sorted(r - a for a, r in done.values() if select(a))
        if not waits:
            return float("nan"), float("nan")
        return waits[len(waits) // 2], waits[min(len(waits) - 1, int(len(waits) * 0.99))]

    lost = len(times) - len(done)
    return {
        "jobs": len(times),
        "unfinished": lost,
        "all": stats(lambda a: True),
        "lunch": stats(lambda a: LUNCH[0] <= a < LUNCH[1]),
        "worker_minutes": pool.pod_seconds / 60.0,
    }


def remove(pool, n, now):
    """Removes n pods, idle ones first; a busy pod's jobs go back to the queue front."""
    victims = sorted(pool.pods.items(), key=lambda kv: len(kv[1]["running"]))[:n]
    requeued = []
    for pid, pod in victims:
        pool.pod_seconds += max(0.0, now - pod["born"])
        requeued.extend(pod["running"].keys())
        del pool.pods[pid]
    if requeued:
        rest = pool.queue[pool.qhead:]
        pool.queue = [(j, now) for j in requeued] + rest
        pool.qhead = 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--uploads", type=int, default=200_000, help="expected uploads per day (200000)")
    p.add_argument("--lunch-peak", type=float, default=10.0, help="lunch rate / night rate (10)")
    p.add_argument("--slots", type=int, default=2, help="job slots per pod (SORI_WORKERS, 2)")
    p.add_argument("--min-pods", type=int, default=1)
    p.add_argument("--max-pods", type=int, default=20)
    p.add_argument("--job-times", help="JSON list of measured job seconds to sample instead of the model")
    p.add_argument("--settings", default="5:15:40,10:15:40,20:15:40,40:15:40,10:30:40,10:15:90",
                   help="comma-separated QUEUE_LENGTH:POLL_S:POD_START_S settings")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--check", action="store_true",
                   help="exit 1 unless every upload is ready by the end of the day (a smoke test)")
    args = p.parse_args()
    print(f"{args.uploads} uploads/day, lunch {args.lunch_peak:g}x night, {args.slots} slots/pod, "
          f"pods {args.min_pods}-{args.max_pods}, job times: {args.job_times or 'model (0.6 s per 30 s clip per slot)'}")
    print("| queueLength | polling s | pod start s | p50 s | p99 s | lunch p50 s | lunch p99 s | worker-hours/day | unfinished |")
    print("|---|---|---|---|---|---|---|---|---|")
    failed = False
    for setting in args.settings.split(","):
        queue_length, poll, start = (float(x) for x in setting.split(":"))
        r = simulate(args, queue_length, poll, start, args.seed)
        failed |= r["unfinished"] > 0 or r["jobs"] == 0 or math.isnan(r["all"][1])
        print(f"| {queue_length:g} | {poll:g} | {start:g} | {r['all'][0]:.1f} | {r['all'][1]:.1f} | "
              f"{r['lunch'][0]:.1f} | {r['lunch'][1]:.1f} | {r['worker_minutes'] / 60:.1f} | {r['unfinished']} |")
    if args.check and failed:
        raise SystemExit("lunch_spike: uploads left unfinished, or none simulated")


if __name__ == "__main__":
    main()
