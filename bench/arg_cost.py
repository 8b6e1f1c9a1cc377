#!/usr/bin/env python3
"""Redis CPU of what a script call is given, before the script does any work: the two
calls the worker makes per LoginId, captured from a real drain (the authorize job's ack,
which chains its detail job and leases the next; the detail job's ack with its ledger,
registry and results-stream write), replayed to a script that only returns: whole, keys
only, and with the account data cut to 256 bytes; then the account data alone, given to
that script and to a plain command. Each variant runs COST_N calls pipelined 200 at a
time on a private redis-server and reads Redis' own CPU (INFO) before and after; the
variants alternate COST_ROUNDS times.

    python3 bench/arg_cost.py            COST_N (20000), COST_ROUNDS (3); the release binaries
                                         (CARGO_TARGET_DIR, as scripts/bench-all builds them)
"""

import ast
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline  # noqa: E402
from lib import WORK, RedisServer  # noqa: E402

N = max(int(os.environ.get("COST_N", 20000)) // 200, 1) * 200  # whole pipelines of 200
ROUNDS = int(os.environ.get("COST_ROUNDS", 3))


class MonitorCapture:
    """Every command of a drain as MONITOR prints it, in a file (a `run_ours` watch)."""

    def __init__(self, redis):
        self.port = redis.port
        self.path = os.path.join(WORK, f"monitor.{time.time_ns()}.txt")

    def start(self, _pids=None):
        self.out = open(self.path, "w")
        self.p = subprocess.Popen(["redis-cli", "-p", str(self.port), "monitor"], stdout=self.out)

    def stop(self):
        time.sleep(0.3)  # let the last lines arrive
        self.p.terminate()
        self.p.wait()
        self.out.close()
        return self.path


# MONITOR prints each argument in double quotes, escaped as a C string literal (\", \\,
# \n, \xHH, ...): one such literal each.
ARGUMENT = re.compile(r'"(?:[^"\\]|\\.)*"')


def captured_calls(path):
    """The script calls MONITOR saw, each as its argument list (EVALSHA, sha, nkeys, ...),
    the arguments unescaped to the bytes Redis was sent (as text)."""
    calls = []
    with open(path) as f:
        for line in f:
            at = line.find('"EVALSHA"')
            if at >= 0:
                calls.append([ast.literal_eval("b" + a).decode() for a in ARGUMENT.findall(line[at:])])
    return calls


def call_of(calls, queue):
    """The middle one of the most frequent script calls (by script and key count) whose
    first key is `queue`'s: the ack of a finished job, which leases the next."""
    mine = [c for c in calls if int(c[2]) > 0 and c[3].endswith(f":{queue}}}:ready")]
    shapes = {}
    for c in mine:
        shapes.setdefault((c[1], c[2]), []).append(c)
    most = max(shapes.values(), key=len)
    return most[len(most) // 2]


def main():
    redis = RedisServer()
    try:
        capture = pipeline.run_ours(redis, 200, 1, tag="argcost", watch=MonitorCapture(redis))["watched"]
        calls = captured_calls(capture)
        authorize, detail = call_of(calls, "authorize"), call_of(calls, "detail")
        accounts_at = detail.index("accounts") + 1
        accounts = detail[accounts_at]
        redis.flush()
        c = redis.c
        sha = c("SCRIPT", "LOAD", "return 1")

        def keys_only(call):
            return ["EVALSHA", sha, call[2]] + call[3:3 + int(call[2])]

        def whole(call):
            return ["EVALSHA", sha] + call[2:]

        short = whole(detail)
        short[accounts_at] = accounts[:256]
        variants = [
            (f"the authorize call: {authorize[2]} keys, {len(authorize) - 3 - int(authorize[2])} arguments",
             whole(authorize)),
            ("the authorize call's keys only", keys_only(authorize)),
            (f"the detail call: {detail[2]} keys, {len(detail) - 3 - int(detail[2])} arguments "
             f"({len(accounts):,} bytes of account data among them)", whole(detail)),
            ("the same, the account data cut to 256 bytes", short),
            ("the detail call's keys only", keys_only(detail)),
            ("no keys, no arguments", ["EVALSHA", sha, "0"]),
            (f"the account data alone ({len(accounts):,} bytes)", ["EVALSHA", sha, "0", accounts]),
            ("256 bytes of it", ["EVALSHA", sha, "0", accounts[:256]]),
            (f"`EXISTS` of a missing key, the account data beside it ({len(accounts):,} bytes)",
             ["EXISTS", "missing", accounts]),
            ("the same with 256 bytes of it", ["EXISTS", "missing", accounts[:256]]),
        ]

        def cost(cmd):
            before = c.cpu_seconds()
            for _ in range(N // 200):
                c.pipeline([cmd] * 200)
            return (c.cpu_seconds() - before) / N * 1e6

        results = {what: [] for what, _ in variants}
        for rnd in range(ROUNDS):
            order = variants if rnd % 2 == 0 else variants[::-1]
            for what, cmd in order:
                results[what].append(cost(cmd))
        print(f"\n### Redis CPU of a script call's keys and arguments ({N:,} calls per variant, "
              f"{ROUNDS} rounds alternated; the script only returns)\n")
        print(f"Replayed: the authorize call of script {authorize[1][:8]} and the detail call of script "
              f"{detail[1][:8]}, captured from a drain of 200 LoginIds.\n")
        print("| what the call carries | us of Redis CPU per call, each round |\n|---|---|")
        for what, _ in variants:
            print(f"| {what} | {' · '.join(f'{v:.2f}' for v in results[what])} |")
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
