#!/usr/bin/env python3
"""Where the Redis time of a routine's enqueue goes: a million authorize jobs queued into
an empty queue by `enqueue.lua` (common.lua before it), as `producer routine run` queues
them (the compact layout, 1,000 jobs a call, two calls in flight, a supersede key and its
pending shard per job), on a private redis-server holding ENQ_N registered logins (a
snapshot made once by `producer logins import`, loaded afresh for every run, so each run
starts from the same keyspace). Redis' own CPU (INFO's `used_cpu_user + used_cpu_sys`) is
read before and after the calls; the client encodes every call first, so its speed does
not count, and checks every reply (no job is a duplicate here: each call answers an empty
list). The script is loaded with the whole of common.lua before it, where the producer's
carries only the helpers it calls (queue/scripts.rs): a few closures more per call of a
thousand jobs, nothing per job.

Besides the script as shipped, diagnostic variants each take one piece away: the script
returning at once (what taking in the arguments costs), no per-job command (the calls'
few commands stay: the clock, the ready list's RPUSHes, the counters), no read of the
pending entry, no write of it, no job hash. What a variant saves is what that piece costs
with the rest in place, not its share: the savings overlap (a job hash less makes the
keyspace smaller, so every other lookup cheaper). Three variants measure what another
layout of the pending entries would buy, none of them what the queue does (each would
need every stored entry moved): a string key per entry instead of a field in a small
shard hash, four times as many shards, and supersede keys without their `authorize:`
prefix. Runs alternate the variants ENQ_ROUNDS times; the first run of a process tends to
be the slowest, so compare the best of each.

    python3 bench/enqueue_cost.py       ENQ_N (1000000), ENQ_ROUNDS (2), ENQ_VARIANTS
                                        (all; names separated by commas); the release
                                        producer (CARGO_TARGET_DIR, as scripts/bench-all
                                        builds it) imports the logins
    ENQ_CALLGRIND=1 ENQ_N=20000 ENQ_ROUNDS=1 python3 bench/enqueue_cost.py
                                        Redis' instructions per job instead (valgrind's
                                        callgrind; about 50 times slower, so fewer jobs):
                                        what a change to the script's own work saves,
                                        which CPU seconds at a million are too noisy for.
                                        Not what a million costs: at 20,000 a pending
                                        shard holds about one entry (sixty at a million)
                                        and the keyspace fits in the CPU's caches
"""

import hashlib
import os
import random
import shutil
import socket
import string
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BIN, ROOT, WORK, CallgrindWatch, RedisServer, bulk_strings, callgrind_instructions, cleanup,  # noqa: E402
                 encode, free_port, load, machine, write_logins)

N = int(os.environ.get("ENQ_N", 1000000))
ROUNDS = int(os.environ.get("ENQ_ROUNDS", 2))
CALLGRIND = os.environ.get("ENQ_CALLGRIND") == "1"
LUA = os.path.join(ROOT, "shared/src/lua/queue")
NS = "nightly-refresh"
Q = f"{{{NS}:authorize}}"
KEYS = [f"{Q}:{k}" for k in ("ready", "delayed", "inflight", "dead", "counters", "workers", "pending",
                              "superseded")]
DATE, RANK = "2026-11-25", "739945"  # the rank of an authorize job is its date's day number
SHARDS = 16384  # shared::queue::keys::PENDING_SHARDS
PER_CALL = 1000  # shared::queue ENQUEUE_CHUNK

# Pieces of enqueue.lua the variants replace; each must occur exactly once (the tool stops
# when the script changed under a variant).
PENDING_SHARD = "local shard = K_PENDING .. ':' .. ARGV[b + AT_SHARD]"
PENDING_READ = "pending[skey] = redis.call('HGET', shard, skey)"
PENDING_WRITE = "redis.call('HSET', pending_shard[skey], skey, entry)"
JOB_HASH = "redis.call('HSET', job_key(id), F_PAYLOAD, payload, F_ENQUEUED, now_text)\n"
WORK_START = "local WINDOW = 64"
SCRIPT_EDITS = {
    "shipped": [],
    "arguments only": [(WORK_START, "if true then return {} end\n" + WORK_START)],
    "no per-job command": [(PENDING_READ, "pending[skey] = false"), (PENDING_WRITE, "local _ = entry"),
                           (JOB_HASH, "local _ = job_key(id)\n")],
    "no pending read": [(PENDING_READ, "pending[skey] = false")],
    "no pending write": [(PENDING_WRITE, "local _ = entry")],
    "no job hash": [(JOB_HASH, "local _ = job_key(id)\n")],
    # `shard` becomes the entry's own key: one string built per job, as the shard's name is.
    "a key per pending entry": [(PENDING_SHARD, "local shard = K_PENDING .. ':' .. skey"),
                                (PENDING_READ, "pending[skey] = redis.call('GET', shard)"),
                                (PENDING_WRITE, "redis.call('SET', pending_shard[skey], entry)")],
}
# Variants of the data: (shards, supersede key prefix).
SHIPPED_LAYOUT = (SHARDS, "authorize:")
LAYOUTS = {"shards x4": (4 * SHARDS, "authorize:"), "key without prefix": (SHARDS, "")}


def fnv1a(text):
    """shared::keys::fnv1a: 64-bit FNV-1a of the UTF-8 bytes."""
    h = 0xcbf29ce484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


class SnapshotRedis(RedisServer):
    """A private redis-server started from a copy of the RDB file `dump`; under callgrind,
    counting nothing until its `watch` starts, when `callgrind` is set."""

    def __init__(self, dump, callgrind=False):
        self.port = free_port()
        self.dir = os.path.join(WORK, f"redis.{self.port}")
        os.makedirs(self.dir)
        shutil.copy(dump, os.path.join(self.dir, "dump.rdb"))
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--logfile", f"{self.dir}/redis.log"]
        self.out = os.path.join(self.dir, "callgrind.out") if callgrind else None
        if callgrind:
            argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}", *argv]
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.p.pid
        self.watch = CallgrindWatch(self.pid) if callgrind else None
        try:
            self._wait_loaded()
        except BaseException:
            self.p.kill()
            self.p.wait()
            raise

    def _wait_loaded(self):
        """Waits until the server answers PING: it answers LOADING until the snapshot is in."""
        for _ in range(3000):
            try:
                self._connect(300, 0.1)
                return
            except RuntimeError as e:
                if "LOADING" not in str(e):
                    raise
                self.c.sock.close()
                time.sleep(0.1)
        raise RuntimeError(f"redis-server on port {self.port} did not load {self.dir}/dump.rdb")

    def stop(self):
        """Shuts the server down; answers the instructions callgrind counted, if it ran."""
        super().stop()
        try:
            self.p.wait(60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        counted = callgrind_instructions(self.out) if self.out and os.path.exists(self.out) else None
        shutil.rmtree(self.dir, ignore_errors=True)
        return counted


def snapshot():
    """An RDB file of N logins imported by the release producer, and the logins."""
    csv = os.path.join(WORK, "logins.csv")
    write_logins(csv, N)
    redis = RedisServer()
    try:
        env = dict(os.environ, REDIS_URL=redis.url, REDIS_MODE="standalone", REFRESH_NAMESPACE=NS,
                   FLINKS_BASE_URL="http://127.0.0.1:9", RUST_LOG="warn")
        subprocess.run([f"{BIN}/producer", "logins", "import", csv], env=env, check=True, capture_output=True)
        redis.c("SAVE")
        dump = os.path.join(WORK, "logins.rdb")
        shutil.copy(os.path.join(redis.dir, "dump.rdb"), dump)
    finally:
        redis.stop()
    with open(csv) as f:
        logins = [line.split(",", 1)[0] for line in f.read().splitlines()[1:]]
    os.unlink(csv)
    return dump, logins


def script(edits):
    body = open(os.path.join(LUA, "enqueue.lua")).read()
    for old, new in edits:
        if body.count(old) != 1:
            raise SystemExit(f"enqueue_cost: enqueue.lua holds {old.strip()!r} {body.count(old)} times, "
                             "not once; update the variant")
        body = body.replace(old, new)
    return (open(os.path.join(LUA, "common.lua")).read() + "\n" + body).encode()


def job_args(logins, shards, prefix):
    """Each call's jobs, their arguments encoded once for every variant of the script: four
    per job, as the routine passes them (id, random as JobId's; payload; supersede key;
    pending shard). A list of (jobs in the call, encoded arguments)."""
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits
    out = []
    for start in range(0, len(logins), PER_CALL):
        args = []
        for login in logins[start:start + PER_CALL]:
            skey = prefix + login
            args += ["".join(rng.choices(alphabet, k=12)), f'["{login}","{DATE}"]', skey, str(fnv1a(skey) % shards)]
        out.append((len(args) // 4, bulk_strings(args)))
    return out


def calls(sha, jobs):
    """The routine's enqueue calls of `jobs` (see `job_args`), encoded."""
    out = []
    for n, encoded in jobs:
        head = ["EVALSHA", sha, len(KEYS), *KEYS, "259200000", n, "4", "0", RANK]
        out.append(b"*%d\r\n" % (len(head) + 4 * n) + bulk_strings(head) + encoded)
    return out


def replies(sock):
    """Reads one reply at a time from `sock`; raises on an error reply or a closed socket."""
    f = sock.makefile("rb")

    def one():
        line = f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"*":
            return [one() for _ in range(int(rest))]
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else f.read(n + 2)[:-2]
        if kind in (b"+", b":"):
            return rest
        raise RuntimeError(f"enqueue_cost: unexpected reply {line[:80]!r} (did redis-server stop?)")
    return one


def send(redis, body, payloads):
    """Sends `payloads` to `redis`, two calls in flight: Redis CPU seconds and used_memory
    added meanwhile."""
    sock = socket.create_connection(("127.0.0.1", redis.port))
    reply = replies(sock)
    sock.sendall(encode(["SCRIPT", "LOAD", body]))
    reply()
    m0, c0 = int(redis.c.info("memory")["used_memory"]), redis.c.cpu_seconds()
    if CALLGRIND:
        redis.watch.start()

    def checked():
        answer = reply()
        if answer != []:
            raise RuntimeError(f"enqueue_cost: a call answered {answer!r:.200}, not an empty list")

    in_flight = 0
    for p in payloads:
        sock.sendall(p)
        in_flight += 1
        if in_flight == 2:
            checked()
            in_flight -= 1
    while in_flight:
        checked()
        in_flight -= 1
    if CALLGRIND:
        redis.watch.stop()
    return redis.c.cpu_seconds() - c0, int(redis.c.info("memory")["used_memory"]) - m0


def run(dump, body, payloads):
    """Redis CPU seconds, used_memory added and, under callgrind, instructions (else None)
    of `payloads` sent to a server started from `dump`."""
    redis = SnapshotRedis(dump, callgrind=CALLGRIND)
    try:
        cpu, mem = send(redis, body, payloads)
    finally:
        counted = redis.stop()
    return cpu, mem, counted


def main():
    if CALLGRIND:
        for tool in ("valgrind", "callgrind_control"):
            if shutil.which(tool) is None:
                sys.exit(f"enqueue_cost: {tool} is required (Debian: apt-get install valgrind)")
    names = os.environ.get("ENQ_VARIANTS")
    variants = [*SCRIPT_EDITS, *LAYOUTS]
    if names:
        wanted = [n.strip() for n in names.split(",")]
        unknown = [n for n in wanted if n not in variants]
        if unknown:
            raise SystemExit(f"enqueue_cost: ENQ_VARIANTS names {unknown}; the variants are {variants}")
        variants = [v for v in variants if v in wanted]
    print(f"enqueue_cost: {N:,} logins, machine {machine()}", file=sys.stderr, flush=True)
    dump, logins = snapshot()
    random.Random(2).shuffle(logins)
    bodies, jobs = {}, {}
    for v in variants:
        bodies[v] = script(SCRIPT_EDITS.get(v, []))
        layout = LAYOUTS.get(v, SHIPPED_LAYOUT)
        if layout not in jobs:
            jobs[layout] = job_args(logins, *layout)
    results = {v: [] for v in variants}
    for r in range(ROUNDS):
        for v in variants:
            body = bodies[v]
            payloads = calls(hashlib.sha1(body).hexdigest(), jobs[LAYOUTS.get(v, SHIPPED_LAYOUT)])
            cpu, mem, counted = run(dump, body, payloads)
            results[v].append((cpu, mem, counted, load()))
            what = f"{counted / N:,.0f} instructions per job" if CALLGRIND else f"{cpu:.2f} s Redis CPU"
            print(f"round {r + 1}: {v}: {what}, {mem / N:.0f} B per job", file=sys.stderr, flush=True)
    if CALLGRIND:
        print_instructions(results)
    else:
        print_cpu(results)


def print_cpu(results):
    base = min(row[0] for row in results["shipped"]) if "shipped" in results else None
    print(f"\n### The routine's enqueue by piece ({N:,} jobs, {ROUNDS} round(s) alternated)\n")
    print(f"| variant | Redis CPU s per {N:,} jobs (each round) | best | against shipped | used_memory per job | load |")
    print("|---|---|---|---|---|---|")
    for v, rows in results.items():
        best = min(row[0] for row in rows)
        against = f"{best - base:+.2f} s" if base is not None and v != "shipped" else ""
        print(f"| {v} | {', '.join(f'{row[0]:.2f}' for row in rows)} | {best:.2f} | {against} | "
              f"{rows[0][1] / N:.0f} B | {', '.join(row[3] for row in rows)} |")


def print_instructions(results):
    """Callgrind's counts do not move between rounds: the first round's."""
    base = results["shipped"][0][2] / N if "shipped" in results else None
    print(f"\n### The routine's enqueue by piece, Redis instructions ({N:,} jobs, callgrind)\n")
    print("| variant | Redis instructions per job | against shipped |")
    print("|---|---|---|")
    for v, rows in results.items():
        per_job = rows[0][2] / N
        against = f"{per_job - base:+,.0f}" if base is not None and v != "shipped" else ""
        print(f"| {v} | {per_job:,.0f} | {against} |")


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()
