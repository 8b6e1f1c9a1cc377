#!/usr/bin/env python3
"""Redis' instructions per LoginId over a whole side-by-side drain (Authorize -> chained
GetAccountsDetail, 5% 401), ours and the BullMQ Rust port, counted by valgrind's callgrind
on a private redis-server: every instruction Redis runs (scripts, commands, the network,
its allocator) from just after the worker's process starts until every job is settled
(callgrind is switched on once the process is spawned: its first calls may be missed, the
same for both), nothing before. A count
of instructions does not move with the machine's load as CPU seconds do, so two builds can
be told apart by a few percent in one run each. It is not time: a cache miss costs more
than an instruction. Redis runs about 50 times slower under valgrind, so the drains are
small.

    python3 bench/redis_instructions.py      INSTR_N (2000 LoginIds); the release binaries
                                             (CARGO_TARGET_DIR, as scripts/bench-all builds
                                             them) and bench/bullmq-rs when built
    INSTR_OURS="before=<dir> after=<dir>"    ours from other builds' binary directories,
                                             one drain each (the simulator stays this build's)
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipeline  # noqa: E402
from lib import BIN, WORK, CallgrindWatch, RedisServer, callgrind_instructions, free_port  # noqa: E402

N = int(os.environ.get("INSTR_N", 2000))


class CallgrindRedis(RedisServer):
    """A private redis-server under callgrind, counting nothing until its `watch` starts
    it; `instructions()` shuts the server down and answers the instructions counted."""

    def __init__(self):
        self.port = free_port()
        self.out = os.path.join(WORK, f"callgrind.{self.port}.out")
        self.p = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={self.out}",
             "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._connect(300, 0.1)
        self.pid = self.p.pid
        self.watch = CallgrindWatch(self.pid)

    def instructions(self):
        self.stop()
        self.p.wait()
        return callgrind_instructions(self.out)


def drain(name, run):
    redis = CallgrindRedis()
    try:
        row = run(redis)
    finally:
        instructions = redis.instructions()
    return {"name": name, "jobs": row["jobs"], "per_login": instructions / N, "per_job": instructions / row["jobs"]}


def main():
    for tool in ("valgrind", "callgrind_control"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"redis_instructions: {tool} is required (Debian: apt-get install valgrind)")
    logins_txt, bulls = pipeline.side_by_side_inputs(N)
    ours = [pair.split("=", 1) for pair in os.environ.get("INSTR_OURS", f"ours={BIN}").split()]
    rows = []
    for name, bin_dir in ours:
        def run(redis, bin_dir=bin_dir):
            pipeline.BIN = bin_dir
            return pipeline.run_ours(redis, N, 1, rules=pipeline.MIX_RULES, tag="instr", watch=redis.watch)
        rows.append(drain(name, run))
        pipeline.BIN = BIN
    if "bullmq-rs" in bulls:
        def run_port(redis):
            sim = pipeline.start_sim(pipeline.MIX_RULES)
            try:
                return pipeline.run_bull(redis, "bullmq-rs", N, logins_txt, sim, watch=redis.watch)
            finally:
                sim.stop()
        rows.append(drain("bullmq-rs", run_port))
    print(f"\n### Redis instructions per LoginId over one drain (callgrind, N = {N:,}, 5% 401)\n")
    print("| implementation | jobs | Redis instructions per LoginId | per job |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['name']} | {r['jobs']:,} | {r['per_login']:,.0f} | {r['per_job']:,.0f} |")


if __name__ == "__main__":
    main()
