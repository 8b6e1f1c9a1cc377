#!/usr/bin/env python3
"""Redis CPU per call of the queue's hottest script, `ack_fetch.lua` (common.lua before it),
by part: the call that acks an authorize job, queues its chained detail job and leases the
next job with its four lease reads, against the same call without the reads, without the
chain, without both, and a script that only returns given the full call's keys and
arguments. Each variant acks and leases COST_N jobs on a private redis-server (fresh data
each time, calls pipelined 200 at a time so the client's speed does not count) and reads
`used_cpu_user + used_cpu_sys` before and after: Redis' own CPU per call, the variants
alternated COST_ROUNDS times. The script is loaded with the whole of common.lua before it,
where the worker's carries only the helpers it calls (queue/scripts.rs): about 9 closures,
a few percent of a call, more than the worker pays.

    python3 bench/script_cost.py                 COST_N (20000), COST_ROUNDS (3)
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import ROOT, RedisServer  # noqa: E402

N = int(os.environ.get("COST_N", 20000))
ROUNDS = int(os.environ.get("COST_ROUNDS", 3))
LUA = os.path.join(ROOT, "shared/src/lua/queue")
NS = "bench-cost"
A, D, L = f"{{{NS}:authorize}}", f"{{{NS}:detail}}", f"{{{NS}:ledger}}"
# The authorize queue's lease reads as the worker sends them: the ledger entry, the
# ineligible mark, the login's active flag, the stored rate limit.
READS = ["4", "HGET", f"{L}:date:", "2", "", "1", "SISMEMBER", f"{L}:ineligible:", "2", "", "1",
         "HGET", f"{NS}:login:", "1", "active", "0", "GET", f"{{{NS}:ratelimit}}:per_minute", "0", "", "0"]
DETAIL = ('{"login_id":"002a58ee-431c-4b10-aa14-4f8b7ca0fe06","routine_date":"2026-11-25",'
          '"request_id":"0aed5872-a55b-430c-94d3-da550a87a2ba","last_refresh":"2026-12-04T12:40:06.885019600",'
          '"session_restarts":0,"polling_since":null,"polls":0}')


def fill(c):
    """N jobs in flight (held by `tok`) and N + 10 ready, all authorize jobs of one date."""
    c("FLUSHALL")
    cmds = []
    for i in range(2 * N + 10):
        payload = '["%08d-aaaa-bbbb-cccc-dddddddddddd","2026-11-25",null]' % i
        cmds.append(["HSET", f"{A}:job:j{i}", "p", payload, "t", "1796389806885"])
        if len(cmds) == 1000:
            c.pipeline(cmds)
            cmds = []
    c.pipeline(cmds)
    ready = [f"j{i}" for i in range(N, 2 * N + 10)]
    for k in range(0, len(ready), 500):
        c("RPUSH", f"{A}:ready", *ready[k:k + 500])
    for k in range(0, N, 500):
        # An in-flight entry names its lease holder: `<id>|<delivery token>`.
        c("ZADD", f"{A}:inflight", *[x for i in range(k, min(k + 500, N)) for x in ("9999999999999", f"j{i}|tok")])


def call(sha, i, reads, chain):
    """The call that acks job i and leases the next one, as the worker makes it."""
    keys = [f"{A}:{k}" for k in ("ready", "delayed", "inflight", "dead", "counters", "workers", "pending",
                                 "superseded")] + [f"{A}:done:j{i}"]
    # The worker passes its estimate of Redis' clock (ARGV[8]) instead of the script's TIME.
    now_ms = str(int(time.time() * 1000))
    args = [f"j{i}", "tok", "0", "1", "60000", "1000", "tok", now_ms] + (READS if reads else ["0"])
    if chain:
        keys += [f"{D}:ready", f"{D}:delayed", f"{D}:counters", f"{D}:dedupe:detail:chained:j{i}"]
        args += [f"d{i}", DETAIL, "0", "80393114", f"detail:chained:j{i}"]
    return ["EVALSHA", sha, len(keys)] + keys + args


def main():
    source = open(f"{LUA}/common.lua").read() + "\n" + open(f"{LUA}/ack_fetch.lua").read()
    redis = RedisServer()
    try:
        c = redis.c
        sha, nothing = c("SCRIPT", "LOAD", source), c("SCRIPT", "LOAD", "return 1")
        variants = [("ack, chain, lease with 4 reads (the worker's call)", sha, True, True),
                    ("ack, chain, lease without reads", sha, False, True),
                    ("ack, lease with 4 reads, no chain", sha, True, False),
                    ("ack, lease, nothing else", sha, False, False),
                    ("a script that only returns, the first call's keys and arguments", nothing, True, True)]
        per_call = {name: [] for name, *_ in variants}
        for _ in range(ROUNDS):
            for name, script, reads, chain in variants:
                fill(c)
                before = c.cpu_seconds()
                for k in range(0, N, 200):
                    replies = c.pipeline([call(script, i, reads, chain) for i in range(k, min(k + 200, N))])
                    if script == sha and not (isinstance(replies[-1], list) and replies[-1][0] == 1):
                        raise RuntimeError(f"{name}: the ack did not take: {replies[-1]!r}")
                per_call[name].append((c.cpu_seconds() - before) / N * 1e6)
        print(f"\n### Redis CPU per call of ack_fetch.lua ({N:,} calls per variant, {ROUNDS} rounds alternated)\n")
        print("| call | µs of Redis CPU per call, each round |\n|---|---|")
        for name, values in per_call.items():
            print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} |")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
