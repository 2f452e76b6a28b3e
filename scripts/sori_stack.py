#!/usr/bin/env python3
"""Sori's production stack on loopback, for scripts/chaos.py and
benches/combined_load.py (standard library only).

The stack: a fresh PostgreSQL database on the local cluster, s3s-fs as S3
(objects in a directory, so a restarted S3 server keeps them), moto as SQS
behind a TCP proxy of ours, one `sori api` and N `sori worker`s.

Why SQS sits behind a proxy: moto keeps its queues in memory, so restarting
moto would lose every message, which SQS itself never does (messages are
stored redundantly and survive any outage the service has). An outage of SQS
as Sori sees it is "connections refused or cut"; killing the proxy gives
exactly that while the messages survive, as they would on AWS. S3 needs no
such trick: s3s-fs keeps objects on disk and is itself killed and restarted.

Also a process: `sori_stack.py proxy LISTEN_PORT TARGET_PORT` forwards TCP
from 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT until killed.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ACCESS_KEY = "sori-stack"
SECRET_KEY = "sori-stack-secret-key"
BUCKET = "sori-stack"
QUEUE = "sori-stack-jobs"
MAX_RECEIVES = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, within, proc=None):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def http(method, url, body=None, token=None, headers=None, data=None, timeout=30):
    """One request: (status, parsed JSON or None). Transport errors raise OSError."""
    hdrs = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["content-type"] = "application/json"
    if token:
        hdrs["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


# ---------------------------------------------------------------- TCP proxy

def proxy_main(listen_port, target_port):
    """Forwards every connection to the target until this process is killed."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(128)

    def pump(src, dst):
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    while True:
        client, _ = server.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


# --------------------------------------------------------------- PostgreSQL

class Postgres:
    """The local cluster (pg_ctlcluster) and one fresh database on it."""

    def __init__(self, server_url, database):
        self.server_url = server_url.rstrip("/")
        self.database = database
        self.url = f"{self.server_url}/{database}"
        self.version = None
        if shutil.which("pg_lsclusters"):
            out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
            for line in out.splitlines():
                cols = line.split()
                if len(cols) >= 3 and cols[1] == "main" and cols[2] == "5432":
                    self.version = cols[0]

    def psql(self, sql, db=None):
        """Runs `sql`; rows as lists of strings (tab-separated output)."""
        out = subprocess.run(
            ["psql", "-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1",
             f"{self.server_url}/{db or self.database}", "-c", sql],
            capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql: {out.stderr.strip()}")
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def create(self):
        self.psql(f"DROP DATABASE IF EXISTS {self.database}", db="postgres")
        self.psql(f"CREATE DATABASE {self.database}", db="postgres")

    def drop(self):
        try:
            self.psql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)", db="postgres")
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            print(f"could not drop database {self.database}: {e}", file=sys.stderr)

    def can_restart(self):
        return self.version is not None

    def ready(self):
        return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"]).returncode == 0

    def ctl(self, *args):
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", self.version, "main", *args],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def crash(self):
        """Stops the cluster as a crash would (immediate: no checkpoint)."""
        self.ctl("stop", "-m", "immediate")

    def start(self, within=30):
        """Starts the cluster if it is down; True once it accepts connections."""
        if self.ready():
            return True
        self.ctl("start")
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(0.2)
        return False


# -------------------------------------------------------------------- stack

class Proc:
    """A child process we started and may kill and restart."""

    def __init__(self, name, argv, env, log_path, port=None):
        self.name, self.argv, self.env, self.log_path, self.port = name, argv, env, log_path, port
        self.proc = None
        self.pid_file = os.path.join(os.path.dirname(log_path), "pids", name)

    def start(self, within=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        # For the calling script's cleanup, should this Python process die
        # first; removed again once the process is reaped (see `kill`).
        os.makedirs(os.path.dirname(self.pid_file), exist_ok=True)
        with open(self.pid_file, "w") as f:
            f.write(str(self.proc.pid))
        if self.port and not wait_port(self.port, within, self.proc):
            raise RuntimeError(f"{self.name} did not listen on {self.port}; see {self.log_path}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.poll() is not None and os.path.exists(self.pid_file):
            os.remove(self.pid_file)


class Stack:
    """PostgreSQL database, S3 (s3s-fs), SQS (moto behind a proxy), API, workers."""

    def __init__(self, sori, work, pg_server_url, database, workers=2, worker_slots=1,
                 visibility_secs=10, extra_env=None):
        self.sori, self.work = sori, work
        self.pg = Postgres(pg_server_url, database)
        self.ports = {"s3": free_port(), "moto": free_port(), "sqs": free_port(),
                      "api": free_port()}
        self.base = f"http://127.0.0.1:{self.ports['api']}"
        self.s3_root = os.path.join(work, "s3")
        os.makedirs(os.path.join(self.s3_root, BUCKET), exist_ok=True)
        here = os.path.abspath(__file__)
        self.s3 = Proc("s3s-fs", [s3s_fs_binary(), "--host", "127.0.0.1",
                                  "--port", str(self.ports["s3"]), "--access-key", ACCESS_KEY,
                                  "--secret-key", SECRET_KEY, self.s3_root],
                       clean_env(), os.path.join(work, "s3.log"), self.ports["s3"])
        self.moto = Proc("moto", [moto_binary(), "-H", "127.0.0.1", "-p", str(self.ports["moto"])],
                         clean_env(), os.path.join(work, "moto.log"), self.ports["moto"])
        self.sqs = Proc("sqs-proxy", [sys.executable, here, "proxy", str(self.ports["sqs"]),
                                      str(self.ports["moto"])],
                        clean_env(), os.path.join(work, "proxy.log"), self.ports["sqs"])
        self.queue_url = None
        self.dead_letter_url = None
        self.env = None
        self.visibility_secs = visibility_secs
        self.extra_env = extra_env or {}
        self.api = None
        self.workers = []
        self.n_workers, self.worker_slots = workers, worker_slots

    # ---- start and stop

    def start(self):
        self.pg.create()
        self.s3.start()
        self.moto.start()
        self.sqs.start()
        self.make_queues()
        self.env = self.sori_env()
        migrate = subprocess.run([self.sori, "migrate"], env=self.env, capture_output=True,
                                 text=True, timeout=120)
        if migrate.returncode != 0:
            raise RuntimeError(f"sori migrate: {migrate.stderr.strip()}")
        self.api = self.sori_proc("api", "api", self.ports["api"])
        self.api.start()
        for i in range(self.n_workers):
            worker = self.sori_proc(f"worker-{i}", "worker", free_port())
            worker.start()
            self.workers.append(worker)
        self.wait_ready(self.api)

    def stop(self):
        """Stops everything this stack started (SIGTERM for Sori, then the servers)."""
        for p in [self.api, *self.workers]:
            if p is not None:
                p.kill(signal.SIGTERM)
        for p in (self.sqs, self.moto, self.s3):
            p.kill(signal.SIGTERM)

    def sori_env(self):
        env = clean_env()
        env.update({
            "DATABASE_URL": self.pg.url,
            "SORI_STORE": "s3", "SORI_S3_BUCKET": BUCKET,
            "SORI_QUEUE": "sqs", "SORI_SQS_QUEUE_URL": self.queue_url,
            "SORI_SIGNUPS_PER_HOUR": "0", "SORI_MEDIA_PER_HOUR": "0",
            "SORI_MAX_RECEIVES": str(MAX_RECEIVES),
            "SORI_JOB_VISIBILITY_SECS": str(self.visibility_secs),
            "SORI_WORKERS": str(self.worker_slots),
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{self.ports['s3']}",
            "AWS_ENDPOINT_URL_SQS": f"http://127.0.0.1:{self.ports['sqs']}",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
            "RUST_LOG": os.environ.get("RUST_LOG", "warn"),
        })
        env.update(self.extra_env)
        return env

    def sori_proc(self, name, role, port):
        env = dict(self.env)
        env["SORI_LISTEN"] = f"127.0.0.1:{port}"
        env["SORI_DATA_DIR"] = os.path.join(self.work, name)
        return Proc(name, [self.sori, role], env, os.path.join(self.work, f"{name}.log"), port)

    def wait_ready(self, proc, within=60):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if http("GET", f"http://127.0.0.1:{proc.port}/readyz", timeout=2)[0] == 200:
                    return True
            except OSError:
                pass
            if not proc.alive():
                proc.start()
            time.sleep(0.2)
        return False

    # ---- SQS (spoken to moto directly: it does not check signatures)

    def sqs_call(self, action, body, port=None):
        auth = ("AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/sqs/aws4_request, "
                "SignedHeaders=host, Signature=0")
        status, answer = http("POST", f"http://127.0.0.1:{port or self.ports['moto']}/",
                              data=json.dumps(body).encode(),
                              headers={"x-amz-target": f"AmazonSQS.{action}",
                                       "content-type": "application/x-amz-json-1.0",
                                       "authorization": auth})
        if status != 200:
            raise RuntimeError(f"SQS {action}: {status} {answer}")
        return answer

    def make_queues(self):
        """The job queue and its dead letters, created through the proxy so
        their URLs name the address Sori reaches SQS at."""
        via = self.ports["sqs"]
        dlq = self.sqs_call("CreateQueue", {"QueueName": f"{QUEUE}-dlq"}, via)["QueueUrl"]
        arn = self.sqs_call("GetQueueAttributes", {"QueueUrl": dlq, "AttributeNames": ["QueueArn"]})
        redrive = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
                   "maxReceiveCount": str(MAX_RECEIVES)}
        url = self.sqs_call("CreateQueue", {"QueueName": QUEUE, "Attributes": {
            "RedrivePolicy": json.dumps(redrive)}}, via)["QueueUrl"]
        self.queue_url, self.dead_letter_url = url, dlq

    def queue_counts(self, url=None):
        """(visible, in flight or delayed) messages of the job queue (or `url`)."""
        attrs = self.sqs_call("GetQueueAttributes", {"QueueUrl": url or self.queue_url,
                                                     "AttributeNames": ["All"]})["Attributes"]
        visible = int(attrs.get("ApproximateNumberOfMessages", 0))
        hidden = int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)) + \
            int(attrs.get("ApproximateNumberOfMessagesDelayed", 0))
        return visible, hidden

    # ---- faults

    def kill_worker(self, rng):
        worker = rng.choice(self.workers)
        worker.kill()
        worker.start()
        return worker.name

    def restart_api(self):
        self.api.kill()
        self.api.start()

    def restart_s3(self, down_secs):
        self.s3.kill()
        time.sleep(down_secs)
        self.s3.start()

    def restart_sqs(self, down_secs):
        self.sqs.kill()
        time.sleep(down_secs)
        self.sqs.start()

    def restart_postgres(self, down_secs):
        self.pg.crash()
        try:
            time.sleep(down_secs)
        finally:
            if not self.pg.start():
                raise RuntimeError("PostgreSQL did not come back")

    def heal(self):
        """Starts whatever is down (after a fault's restart failed or was cut short)."""
        self.pg.start()
        for p in (self.s3, self.moto, self.sqs, self.api, *self.workers):
            if not p.alive():
                p.start()


def clean_env():
    """This environment without any Sori, database or AWS setting."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith(("SORI_", "AWS_")) or k == "DATABASE_URL")}


def s3s_fs_binary():
    cargo_bin = os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")),
                             "bin", "s3s-fs")
    found = cargo_bin if os.access(cargo_bin, os.X_OK) else shutil.which("s3s-fs")
    if not found:
        raise SystemExit("s3s-fs not found; run scripts/setup.sh test")
    return found


def moto_binary():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    venv = os.path.join(repo, ".venv-moto", "bin", "moto_server")
    found = venv if os.access(venv, os.X_OK) else shutil.which("moto_server")
    if not found:
        raise SystemExit("moto_server not found; run scripts/setup.sh test")
    return found


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "proxy":
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        proxy_main(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
