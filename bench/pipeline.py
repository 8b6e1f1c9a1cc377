#!/usr/bin/env python3
"""The benchmark suite: the whole pipeline (producer -> Redis -> workers -> flinks-sim)
with the release binaries, on a private redis-server. `scripts/bench-all` runs it.

    bench/pipeline.py [SECTION ...]     sections: e2e redis import routine cluster rss compare profile
                                        (default: these), anatomy (only when named)

Env: BENCH_N (20000), BENCH_IMPORT_N (1000000), BENCH_CONCURRENCY (32),
     BENCH_COMPARE_N (20000; "20000 100000" compares at both sizes),
     BENCH_ROUNDS (1: the compare section's rounds, ours and each BullMQ alternated),
     BENCH_WORKERS ("1 2 4"), BENCH_COUNT_N (2000, the MONITOR counts' runs),
     BENCH_MONITOR_DUMP (a file: every line MONITOR saw is appended to it, to see which
     script ran which command). Prints one markdown table per section, then the targets
     those sections measured (met or not), and writes bench/results/latest.json (git-ignored).
"""

import json
import re
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import (BIN, ROOT, WORK, CommandTimeWatch, Monitor, Proc, RedisCluster, RedisServer, SchedWatch,  # noqa
                 SlowlogWatch, cpu_seconds, histogram, load, machine, quantile, rss_kib, scrape, start_sim, write_logins, free_port)

N = int(os.environ.get("BENCH_N", 20000))
IMPORT_N = int(os.environ.get("BENCH_IMPORT_N", 1000000))
COMPARE_NS = [int(n) for n in os.environ.get("BENCH_COMPARE_N", "20000").split()]
COUNT_N = int(os.environ.get("BENCH_COUNT_N", 2000))
ROUNDS = max(int(os.environ.get("BENCH_ROUNDS", 1)), 1)
CONC = int(os.environ.get("BENCH_CONCURRENCY", 32))
WORKERS = [int(w) for w in os.environ.get("BENCH_WORKERS", "1 2 4").split()]
MIX_RULES = os.path.join(WORK, "mix95.toml")
BULLMQ_RS_BIN = os.path.join(ROOT, "bench/bullmq-rs/target/release/bullmq-rs-bench")
BULLMQ_NODE_MODULES = os.path.join(ROOT, "bench/bullmq/node_modules")
RESULTS = {"machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
DATE = "2026-11-25"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def env_for(redis, sim, ns, **extra):
    e = dict(os.environ)
    e.update(REDIS_URL=redis.url, REDIS_MODE=redis.mode, REFRESH_NAMESPACE=ns, FLINKS_BASE_URL=sim.url,
             RATE_LIMIT_PER_MINUTE="0", RUST_LOG="warn", LOG_FORMAT="json",
             ROUTINE_TZ="UTC", MAX_ATTEMPTS="3", RETRY_BASE_DELAY="1s", RETRY_MAX_DELAY="2s")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def producer(env, *args):
    t = time.monotonic()
    r = subprocess.run([f"{BIN}/producer", *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"producer {args} failed: {r.stderr[-2000:]}")
    return time.monotonic() - t


def routine_run_phases(env):
    """Runs `producer routine run` with the routine's debug lines on: (seconds in all,
    seconds until every active login was read, the read phase that orders the enqueue)."""
    t = time.monotonic()
    env = dict(env, RUST_LOG="warn,shared::routine=debug", LOG_FORMAT="json")
    p = subprocess.Popen([f"{BIN}/producer", "routine", "run", "--date", DATE], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    read, tail = None, []
    for line in p.stderr:
        if read is None and '"routine: active logins read"' in line:
            read = time.monotonic() - t
        tail = (tail + [line])[-20:]
    if p.wait() != 0:
        raise RuntimeError(f"producer routine run failed: {''.join(tail)[-2000:]}")
    return time.monotonic() - t, read


def counters(c, ns, q):
    h = c("HGETALL", f"{{{ns}:{q}}}:counters") or []
    return {h[i]: int(h[i + 1]) for i in range(0, len(h), 2)}


def drained(c, ns, n):
    a, d = counters(c, ns, "authorize"), counters(c, ns, "detail")
    a_done = a.get("succeeded", 0) + a.get("dead", 0)
    d_done = d.get("succeeded", 0) + d.get("dead", 0)
    if a_done < n or d_done < d.get("enqueued", 0):
        return None
    for q in ("authorize", "detail"):
        if c("LLEN", f"{{{ns}:{q}}}:ready") or c("ZCARD", f"{{{ns}:{q}}}:inflight") \
                or c("ZCARD", f"{{{ns}:{q}}}:delayed"):
            return None
    return a_done, d_done


def snapshot(redis):
    s = redis.c.info("stats")
    return {"cmd": redis.c.commandstats(), "in": int(s["total_net_input_bytes"]),
            "out": int(s["total_net_output_bytes"]), "cpu": redis.cpu()}


def delta(before, after):
    cmds = {k: v - before["cmd"].get(k, 0) for k, v in after["cmd"].items()}
    # the INFO/HGETALL/LLEN/ZCARD polling of this driver is not the pipeline's
    for k in ("info", "hgetall", "llen", "zcard", "config|resetstat", "ping"):
        cmds.pop(k, None)
    return {"cmd": {k: v for k, v in cmds.items() if v}, "in": after["in"] - before["in"],
            "out": after["out"] - before["out"], "cpu": after["cpu"] - before["cpu"]}


def run_ours(redis, n, workers, conc=CONC, rules=None, profile=None, tag="", monitor=False, settings=None,
             watch=None):
    """Imports n LoginIds, enqueues the routine, runs `workers` worker processes until the
    queues are drained (`settings`: extra environment of every process; `watch`: anything
    with `start(pids)` and `stop()`, such as a SchedWatch, started with the workers and
    stopped once the queues are drained, its answer under "watched"). Returns the figures
    of one run."""
    redis.flush()
    sim = start_sim(rules)
    ns = f"bench-{tag}-{os.getpid()}"
    csv = os.path.join(WORK, f"logins-{n}.csv")
    if not os.path.exists(csv):
        write_logins(csv, n)
    env = env_for(redis, sim, ns, **(settings or {}))
    producer(env, "logins", "import", csv)
    mem0 = int(redis.c.info("memory")["used_memory"])
    mon = Monitor(redis.port, exclude=[redis.c.sock.getsockname()]) if monitor else None
    producer(env, "routine", "run", "--date", DATE)
    mem1 = int(redis.c.info("memory")["used_memory"])
    shards_queued = redis.used_memory_per_shard() if redis.mode == "cluster" else None
    if mon:
        time.sleep(0.3)
        enqueue_counts = mon.snapshot()
    before = snapshot(redis)
    sim_cpu0 = cpu_seconds(sim.pid)
    ports = [free_port() for _ in range(workers)]
    t0 = time.monotonic()
    procs = [Proc([f"{BIN}/worker", "--concurrency", str(conc)],
                  env=dict(env, METRICS_ADDR=f"127.0.0.1:{p}")) for p in ports]
    if watch:
        watch.start({"worker": [p.pid for p in procs], "Redis": [redis.pid], "simulator": [sim.pid]})
    perf = None
    if profile:
        time.sleep(0.3)
        perf = subprocess.Popen(["perf", "record", "-F", "999", "-e", "cpu-clock", "-g",
                                 "-o", profile, "-p", str(procs[0].pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    done = None
    while done is None:
        time.sleep(0.02)
        done = drained(redis.c, ns, n)
        for p in procs:
            if p.p.poll() is not None:
                raise RuntimeError(f"worker exited: {open(p.log).read()[-2000:]}")
        if int(time.monotonic() * 10) % 5 == 0:
            peak = max(peak, max(rss_kib(p.pid)[0] for p in procs))
        if time.monotonic() - t0 > 600:
            raise RuntimeError("not drained after 600 s")
    elapsed = time.monotonic() - t0
    watched = watch.stop() if watch else None
    after = snapshot(redis)
    shards_done = redis.used_memory_per_shard() if redis.mode == "cluster" else None
    monitored = None
    if mon:
        client, lua = mon.stop()
        monitored = {"enqueue": enqueue_counts, "client": client, "lua": lua}
    if perf:
        perf.send_signal(2)
        perf.wait()
    worker_cpu = sum(cpu_seconds(p.pid) for p in procs)
    sim_cpu = cpu_seconds(sim.pid) - sim_cpu0
    hwm = max(rss_kib(p.pid)[1] for p in procs)
    texts = [scrape(p) for p in ports]
    lat = {}
    for q in ("authorize", "detail"):
        b = histogram(texts, "nightly_refresh_job_duration_seconds", q)
        lat[q] = (quantile(b, 0.5) * 1000, quantile(b, 0.99) * 1000)
    for p in procs:
        p.stop()
    sim.stop()
    d = delta(before, after)
    jobs = done[0] + done[1]
    return {
        "n": n, "workers": workers, "concurrency": conc, "elapsed_s": elapsed,
        "jobs": jobs, "jobs_per_s": jobs / elapsed, "logins_per_s": n / elapsed,
        "latency_ms": lat, "cpu_per_1k": {"workers": worker_cpu * 1000 / n,
                                          "redis": d["cpu"] * 1000 / n,
                                          "sim": sim_cpu * 1000 / n},
        "redis_cmds": d["cmd"], "bytes_in": d["in"], "bytes_out": d["out"],
        "queued_bytes_per_job": (mem1 - mem0) / n, "rss_peak_kib": max(peak, hwm),
        "load": load(), "monitor": monitored,
        "shard_memory": {"queued": shards_queued, "done": shards_done}, "watched": watched,
    }


def section_e2e(redis):
    rows = []
    for w in WORKERS:
        log(f"e2e: {N} LoginIds, {w} worker(s), concurrency {CONC} (load {load()})")
        rows.append(run_ours(redis, N, w, tag=f"e2e{w}"))
        r = rows[-1]
        log(f"  {r['jobs_per_s']:.0f} jobs/s in {r['elapsed_s']:.1f} s")
    RESULTS["e2e"] = rows
    print("\n### Unthrottled end-to-end (N = %d, all healthy, RATE_LIMIT_PER_MINUTE=0)\n" % N)
    print("| workers x concurrency | wall s | jobs/s | LoginIds/s | authorize p50/p99 ms | detail p50/p99 ms "
          "| CPU s per 1k LoginIds: workers / Redis / sim | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        la, ld, c = r["latency_ms"]["authorize"], r["latency_ms"]["detail"], r["cpu_per_1k"]
        print(f"| {r['workers']} x {r['concurrency']} | {r['elapsed_s']:.2f} | {r['jobs_per_s']:,.0f} "
              f"| {r['logins_per_s']:,.0f} | {la[0]:.1f} / {la[1]:.1f} | {ld[0]:.1f} / {ld[1]:.1f} "
              f"| {c['workers']:.2f} / {c['redis']:.2f} / {c['sim']:.2f} | {r['load']} |")


def section_cluster(redis):
    """The same unthrottled routine on the suite's single Redis and on a private 3-master
    Redis Cluster (no replicas, no persistence, like the single one), one after the other
    in one run, the cluster's with its ledger in 64 ledger buckets (LEDGER_BUCKETS=64, as
    the README advises for a cluster); the cluster's row also gives each shard's
    used_memory."""
    w = WORKERS[0]
    log(f"cluster: {N} LoginIds, {w} worker(s), single Redis (load {load()})")
    single = run_ours(redis, N, w, tag="single")
    cluster = RedisCluster(3)
    try:
        log(f"cluster: {N} LoginIds, {w} worker(s), 3-master cluster (load {load()})")
        sharded = run_ours(cluster, N, w, tag="cluster", settings={"LEDGER_BUCKETS": 64})
    finally:
        cluster.stop()
    RESULTS["cluster"] = {"single": single, "cluster": sharded}
    print(f"\n### One Redis and a 3-shard Redis Cluster (N = {N}, {w} worker x {CONC}, all healthy, "
          "RATE_LIMIT_PER_MINUTE=0)\n")
    print("| Redis | wall s | jobs/s | LoginIds/s | CPU s per 1k LoginIds: workers / Redis | "
          "used_memory per shard, queued (MiB) | after the run (MiB) | load |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in (("one server", single), ("3-master cluster, LEDGER_BUCKETS=64", sharded)):
        c, m = r["cpu_per_1k"], r["shard_memory"]
        mib = (lambda xs: " / ".join(f"{x / 2**20:.1f}" for x in xs) if xs else "–")
        print(f"| {name} | {r['elapsed_s']:.2f} | {r['jobs_per_s']:,.0f} | {r['logins_per_s']:,.0f} "
              f"| {c['workers']:.2f} / {c['redis']:.2f} | {mib(m['queued'])} | {mib(m['done'])} | {r['load']} |")


def sub(a, b):
    return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}


def section_redis(redis):
    """Round trips, commands and bytes per LoginId over a whole routine, and memory per
    queued job: one plain run (bytes, memory) and one counted with MONITOR."""
    n = COUNT_N
    plain = run_ours(redis, n, 1, tag="bytes")
    m = run_ours(redis, n, 1, tag="count", monitor=True)["monitor"]
    enq_client, enq_lua = m["enqueue"]
    w_client, w_lua = sub(m["client"], enq_client), sub(m["lua"], enq_lua)
    rt_w, lua_w = sum(w_client.values()), sum(w_lua.values())
    rt_e, lua_e = sum(enq_client.values()), sum(enq_lua.values())
    jobs = plain["jobs"]
    bench = subprocess.run(["redis-benchmark", "-p", str(redis.port), "-q", "-n", "200000", "-c", "32",
                            "-t", "get,set"], capture_output=True, text=True).stdout
    rb = {m.group(1): float(m.group(2)) for m in
          re.finditer(r"(GET|SET): ([\d.]+) requests per second", bench)}
    rb_load = load()
    # pipelined commands (the registry's HMSET+HDEL+LPUSH+LTRIM) share one network round trip
    pipelined = sum(w_client.get(k, 0) for k in ("hdel", "lpush", "ltrim")) if w_client.get("hmset") else 0
    net_rt = (rt_w - pipelined) / n
    bound = rb.get("GET", 0) / net_rt if net_rt else 0
    RESULTS["redis_bound"] = {"redis_benchmark": rb, "net_round_trips_per_login": net_rt,
                              "bound_logins_per_s": bound, "load": rb_load}
    RESULTS["redis"] = {"n": n, "jobs": jobs, "workers_client": w_client, "workers_lua": w_lua,
                        "enqueue_client": enq_client, "enqueue_lua": enq_lua,
                        "bytes_in": plain["bytes_in"], "bytes_out": plain["bytes_out"],
                        "queued_bytes_per_job": plain["queued_bytes_per_job"],
                        "commandstats": plain["redis_cmds"]}
    print(f"\n### Redis per LoginId over a whole routine (N = {n:,}, all healthy, 1 worker; "
          "counted with MONITOR in a separate, untimed run)\n")
    print("| phase | round trips per LoginId | commands run inside Lua per LoginId | all commands per LoginId | per job (2 jobs per LoginId) |")
    print("|---|---|---|---|---|")
    print(f"| `producer routine run` (enqueue) | {rt_e / n:.2f} | {lua_e / n:.2f} | {(rt_e + lua_e) / n:.2f} | |")
    print(f"| workers (fetch → Flinks → settle → ack) | {rt_w / n:.2f} | {lua_w / n:.2f} | {(rt_w + lua_w) / n:.2f} "
          f"| {rt_w / jobs:.2f} round trips, {(rt_w + lua_w) / jobs:.2f} commands |")
    print(f"\n- network round trips per LoginId (the registry's 4-command pipeline counted once): "
          f"**{net_rt:.2f}** ({net_rt * n / jobs:.2f} per job)")
    print(f"- redis-benchmark on the same server (-c 32, no pipelining): GET {rb.get('GET', 0):,.0f}/s, "
          f"SET {rb.get('SET', 0):,.0f}/s (load {rb_load}) → round-trip bound "
          f"**{bound:,.0f} LoginIds/s** ({2 * bound:,.0f} jobs/s)")
    print(f"- bytes per LoginId (workers' phase, INFO stats): {plain['bytes_in'] / n:,.0f} in to Redis, "
          f"{plain['bytes_out'] / n:,.0f} out")
    print(f"- Redis used_memory per queued authorize job (`routine run` of {n:,}): "
          f"{plain['queued_bytes_per_job']:.0f} B\n")
    print("| command (workers' phase) | sent by the worker, per LoginId | run inside Lua, per LoginId |\n|---|---|---|")
    for k in sorted(set(w_client) | set(w_lua), key=lambda k: -(w_client.get(k, 0) + w_lua.get(k, 0))):
        print(f"| {k} | {w_client.get(k, 0) / n:.2f} | {w_lua.get(k, 0) / n:.2f} |")


def section_import(redis):
    redis.flush()
    sim = start_sim()
    csv = os.path.join(WORK, f"logins-{IMPORT_N}.csv")
    t = time.monotonic()
    write_logins(csv, IMPORT_N)
    gen = time.monotonic() - t
    # The default namespace, fixed: every login's and job's key holds it, and Redis'
    # allocator rounds a key up to a size class, so a namespace one character longer (such
    # as one that held this process' id) can cost 16 bytes more per login between runs.
    env = env_for(redis, sim, "nightly-refresh")
    m0 = int(redis.c.info("memory")["used_memory"])
    l0 = load()
    c0 = redis.cpu()
    t_import = producer(env, "logins", "import", csv)
    c1 = redis.cpu()
    m1 = int(redis.c.info("memory")["used_memory"])
    l1 = load()
    t_run, t_read = routine_run_phases(env)
    c2 = redis.cpu()
    m2 = int(redis.c.info("memory")["used_memory"])
    sim.stop()
    os.unlink(csv)
    RESULTS["import"] = {"n": IMPORT_N, "import_s": t_import, "run_s": t_run, "read_s": t_read,
                         "import_redis_cpu_s": c1 - c0, "run_redis_cpu_s": c2 - c1,
                         "registry_bytes": m1 - m0, "queue_bytes": m2 - m1, "load": [l0, l1, load()]}
    print(f"\n### Import and enqueue ({IMPORT_N:,} LoginIds; CSV generation {gen:.1f} s not counted)\n")
    print("| step | seconds | Redis CPU s | Redis used_memory added | per LoginId | load |\n|---|---|---|---|---|---|")
    print(f"| `producer logins import` | {t_import:.1f} | {c1 - c0:.1f} | {(m1 - m0) / 2**20:,.0f} MiB | {(m1 - m0) / IMPORT_N:.0f} B | {l1} |")
    read = f"{t_read:.1f} s reading the active logins, then" if t_read is not None else "no read phase logged,"
    print(f"| `producer routine run` ({read} the enqueue) | {t_run:.1f} | {c2 - c1:.1f} | {(m2 - m1) / 2**20:,.0f} MiB | {(m2 - m1) / IMPORT_N:.0f} B | {load()} |")
    redis.flush()


def section_routine(redis):
    """`producer routine run` over BENCH_IMPORT_N registered logins with the ordering and the
    supersession at work: 1% of the logins carry a Priority, half were refreshed before (at
    random times), and the run of D+1 finds every login's job of D still waiting, so it
    replaces all of them."""
    import random
    import uuid
    redis.flush()
    sim = start_sim()
    ns = f"bench-routine-{os.getpid()}"
    # The product's default rate, so the run's forecast is the one a customer would see.
    env = env_for(redis, sim, ns, RATE_LIMIT_PER_MINUTE=20)
    rng = random.Random(15)
    csv = os.path.join(WORK, f"logins-priority-{IMPORT_N}.csv")
    cmds = os.path.join(WORK, f"last-success-{IMPORT_N}.resp")
    with open(csv, "w") as f, open(cmds, "w") as c:
        f.write("LoginId,Priority\n")
        for _ in range(IMPORT_N):
            login = str(uuid.uuid4())
            f.write(f"{login},{rng.randint(1, 100) if rng.random() < 0.01 else ''}\n")
            if rng.random() < 0.5:
                at = int((time.time() - rng.randint(0, 60 * 86400)) * 1000)
                c.write(f"HSET {ns}:login:{login} last_success_at {at}\n")
    t_import = producer(env, "logins", "import", csv)
    subprocess.run(["redis-cli", "-p", str(redis.port), "--pipe"], stdin=open(cmds),
                   stdout=subprocess.DEVNULL, check=True)
    d0, d1 = DATE, "2026-11-26"
    m0 = int(redis.c.info("memory")["used_memory"])
    l0 = load()
    t_first = producer(env, "routine", "run", "--date", d0)
    m1 = int(redis.c.info("memory")["used_memory"])
    l1 = load()
    t = time.monotonic()
    r = subprocess.run([f"{BIN}/producer", "routine", "run", "--date", d1, "--json"], env=env,
                       capture_output=True, text=True)
    t_second = time.monotonic() - t
    if r.returncode != 0:
        raise RuntimeError(f"routine run {d1} failed: {r.stderr[-2000:]}")
    run = json.loads(r.stdout)
    m2 = int(redis.c.info("memory")["used_memory"])
    l2 = load()
    sim.stop()
    for path in (csv, cmds):
        os.unlink(path)
    if run["superseded"] != IMPORT_N or run["enqueued"] != IMPORT_N:
        raise RuntimeError(f"routine run {d1}: expected {IMPORT_N} enqueued and superseded: {run}")
    RESULTS["routine"] = {"n": IMPORT_N, "import_s": t_import, "first_s": t_first,
                          "second_s": t_second, "run": run, "load": [l0, l1, l2],
                          "queue_bytes": m1 - m0, "second_bytes": m2 - m1}
    print(f"\n### `routine run` with ordering and supersession ({IMPORT_N:,} active LoginIds, "
          f"1% with a Priority, half refreshed before)\n")
    print("| step | seconds | enqueued | superseded | Redis used_memory added | load |\n|---|---|---|---|---|---|")
    print(f"| `producer logins import` (with `Priority`) | {t_import:.1f} | | | | {l0} |")
    print(f"| `producer routine run --date {d0}` (queue empty) | {t_first:.1f} | {IMPORT_N:,} | 0 | "
          f"{(m1 - m0) / 2**20:,.0f} MiB | {l1} |")
    print(f"| `producer routine run --date {d1}` (every {d0} job still waiting) | {t_second:.1f} | "
          f"{run['enqueued']:,} | {run['superseded']:,} | {(m2 - m1) / 2**20:,.0f} MiB | {l2} |")
    print(f"\nForecast of the {d1} run: capacity_per_day {run['capacity_per_day']}, "
          f"over_capacity {run['over_capacity']}, coverage_days {run['coverage_days']}")
    redis.flush()


def section_rss(redis):
    rows = []
    redis.flush()
    sim = start_sim()
    env = env_for(redis, sim, f"bench-idle-{os.getpid()}")
    for conc in (1, 32, 256):
        p = Proc([f"{BIN}/worker", "--concurrency", str(conc)],
                 env=dict(env, METRICS_ADDR=f"127.0.0.1:{free_port()}"))
        time.sleep(3)
        idle = rss_kib(p.pid)[0]
        p.stop()
        n = 5000 if conc == 1 else N
        r = run_ours(redis, n, 1, conc=conc, tag=f"rss{conc}")
        rows.append({"concurrency": conc, "idle_kib": idle, "load_kib": r["rss_peak_kib"],
                     "n": n, "jobs_per_s": r["jobs_per_s"], "load": r["load"]})
    sim.stop()
    RESULTS["rss"] = rows
    print("\n### Worker footprint (VmRSS; under load = peak VmHWM while draining)\n")
    print("| concurrency | idle MiB | under load MiB | (run: LoginIds, jobs/s) | load |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['concurrency']} | {r['idle_kib'] / 1024:.1f} | {r['load_kib'] / 1024:.1f} "
              f"| {r['n']:,}, {r['jobs_per_s']:,.0f} | {r['load']} |")


def run_bull(redis, impl, n, logins_txt, sim, monitor=False, watch=None):
    redis.flush()
    prefix = f"bench-{impl}"
    env = dict(os.environ, REDIS_URL=redis.url, FLINKS_BASE_URL=sim.url, N=str(n),
               CONCURRENCY=str(CONC), LOGINS_FILE=logins_txt, BULL_PREFIX=prefix)
    if impl == "bullmq-node":
        cmd = ["node", os.path.join(ROOT, "bench/bullmq/worker.js")]
    else:
        cmd = [BULLMQ_RS_BIN]
    subprocess.run(cmd + ["enqueue"], env=env, check=True, capture_output=True)
    before = snapshot(redis)
    mon = Monitor(redis.port, exclude=[redis.c.sock.getsockname()]) if monitor else None
    out = os.path.join(WORK, f"{impl}.{time.time_ns()}.out")
    # Timed as run_ours times ours: from the process' start, its own start-up included,
    # until this driver, polling every 20 ms, sees every job settled (it prints its own
    # count from after its start-up too: "self_timed_s").
    t0 = time.monotonic()
    p = Proc(cmd + ["work"], env=env, stdout=open(out, "w"))
    if watch:
        watch.start({"worker": [p.pid], "Redis": [redis.pid], "simulator": [sim.pid]})
    res = None
    while res is None:
        time.sleep(0.02)
        if p.p.poll() is not None:
            raise RuntimeError(f"{impl} exited: {open(p.log).read()[-2000:]}")
        for line in open(out).read().splitlines():
            if line.startswith("{"):
                res = json.loads(line)
        if time.monotonic() - t0 > 600:
            raise RuntimeError(f"{impl} not drained after 600 s")
    elapsed = time.monotonic() - t0
    watched = watch.stop() if watch else None
    after = snapshot(redis)
    sent = sum(mon.stop()[0].values()) if mon else None
    cpu = cpu_seconds(p.pid)
    hwm = rss_kib(p.pid)[1]
    p.stop()
    d = delta(before, after)
    jobs = res["authorize"] + res["detail"]
    return {"impl": impl, "n": n, "elapsed_s": elapsed, "self_timed_s": res["elapsed"], "jobs": jobs,
            "jobs_per_s": jobs / elapsed, "cmds_per_job": sum(d["cmd"].values()) / jobs,
            "scripts_per_job": sum(v for k, v in d["cmd"].items() if k.startswith(("eval", "fcall"))) / jobs,
            "bytes_per_job": (d["in"] + d["out"]) / jobs, "rss_kib": hwm,
            "worker_cpu_per_1k": cpu * 1000 / n, "redis_cpu_per_1k": d["cpu"] * 1000 / n,
            "failed": res.get("failed", 0), "cmds": d["cmd"], "load": load(),
            "sent_per_job": sent / jobs if sent is not None else None, "watched": watched}


OURS = "nightly-refresh (ours)"


def ours_row(r):
    return {"impl": OURS, "n": r["n"], "elapsed_s": r["elapsed_s"],
            "jobs": r["jobs"], "jobs_per_s": r["jobs_per_s"],
            "cmds_per_job": sum(r["redis_cmds"].values()) / r["jobs"],
            "scripts_per_job": sum(v for k, v in r["redis_cmds"].items() if k.startswith(("eval", "fcall"))) / r["jobs"],
            "bytes_per_job": (r["bytes_in"] + r["bytes_out"]) / r["jobs"],
            "rss_kib": r["rss_peak_kib"], "worker_cpu_per_1k": r["cpu_per_1k"]["workers"],
            "redis_cpu_per_1k": r["cpu_per_1k"]["redis"], "failed": 0, "load": r["load"]}


def bull_binary(impl):
    if impl == "bullmq-node":
        return os.path.isdir(BULLMQ_NODE_MODULES)
    return os.path.exists(BULLMQ_RS_BIN)


def section_compare(redis):
    """The side-by-side drain at each of BENCH_COMPARE_N's sizes ("20000 100000": both)."""
    RESULTS["compare"] = {}
    for n in COMPARE_NS:
        RESULTS["compare"][n] = compare_at(redis, n)


def side_by_side_inputs(size):
    """The side-by-side workload's inputs: the simulator's rules (95% healthy, 5% 401
    QUESTION_NOT_FOUND) in MIX_RULES, and `size` LoginIds as the BullMQ drivers read them
    (one per line; ours imports the CSV they come from). Returns that file and the BullMQ
    implementations that are built."""
    with open(MIX_RULES, "w") as f:
        f.write('default = "healthy"\n[mix]\nhealthy = 95\nquestion_not_found = 5\n')
    csv = os.path.join(WORK, f"logins-{size}.csv")
    if not os.path.exists(csv):
        write_logins(csv, size)
    logins_txt = os.path.join(WORK, f"compare-logins-{size}.txt")
    with open(csv) as f, open(logins_txt, "w") as o:
        for line in list(f)[1:]:
            o.write(line.split(",")[0] + "\n")
    bulls = [impl for impl in ("bullmq-rs", "bullmq-node") if bull_binary(impl)]
    for impl in ("bullmq-rs", "bullmq-node"):
        if impl not in bulls:
            log(f"compare: {impl} not built (bench/bullmq-rs: cargo build --release; bench/bullmq: npm ci); skipped")
    return logins_txt, bulls


def compare_at(redis, size):
    """Ours, then each BullMQ that is built, BENCH_ROUNDS times alternated (the machine's
    speed moves between minutes: a ratio is only read within one round), draining
    `size` LoginIds. Returns the rows."""
    logins_txt, bulls = side_by_side_inputs(size)
    rows = []
    for rnd in range(1, ROUNDS + 1):
        # Even rounds run in the reverse order, so neither side always runs first.
        order = ["ours"] + bulls if rnd % 2 == 1 else bulls[::-1] + ["ours"]
        for impl in order:
            log(f"compare: round {rnd}, {impl} (load {load()})")
            if impl == "ours":
                row = ours_row(run_ours(redis, size, 1, rules=MIX_RULES, tag="cmp"))
            else:
                sim = start_sim(MIX_RULES)
                row = run_bull(redis, impl, size, logins_txt, sim)
                sim.stop()
            row["round"] = rnd
            rows.append(row)
    # commands *sent* per job (MONITOR, separate untimed runs of COUNT_N LoginIds)
    sent = {}
    m = run_ours(redis, COUNT_N, 1, rules=MIX_RULES, tag="cmpcount", monitor=True)
    sent[OURS] = sum(sub(m["monitor"]["client"], m["monitor"]["enqueue"][0]).values()) / m["jobs"]
    count_txt = os.path.join(WORK, "count-logins.txt")
    with open(logins_txt) as f, open(count_txt, "w") as o:
        o.writelines(list(f)[:COUNT_N])
    for impl in bulls:
        sim = start_sim(MIX_RULES)
        sent[impl] = run_bull(redis, impl, COUNT_N, count_txt, sim, monitor=True)["sent_per_job"]
        sim.stop()
    for r in rows:
        r["sent_per_job"] = sent[r["impl"]]
        ours = next(o for o in rows if o["round"] == r["round"] and o["impl"] == OURS)
        r["ours_over_it"] = ours["jobs_per_s"] / r["jobs_per_s"]
    print(f"\n### Side by side: Authorize -> chained GetAccountsDetail, 5% 401 QUESTION_NOT_FOUND "
          f"(N = {size:,}, one process, concurrency {CONC} per queue, {ROUNDS} round(s))\n")
    print("| round | implementation | jobs | drain s | jobs/s | ours / it | Redis cmds per job (in Lua too) "
          "| cmds sent per job | script calls per job | Redis bytes per job | worker peak RSS MiB | worker CPU s / 1k LoginIds "
          "| Redis CPU s / 1k | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['round']} | {r['impl']} | {r['jobs']:,} | {r['elapsed_s']:.2f} | {r['jobs_per_s']:,.0f} | {r['ours_over_it']:.2f}x "
              f"| {r['cmds_per_job']:.1f} | {r['sent_per_job']:.2f} | {r['scripts_per_job']:.2f} | {r['bytes_per_job']:,.0f} "
              f"| {r['rss_kib'] / 1024:.1f} | {r['worker_cpu_per_1k']:.2f} | {r['redis_cpu_per_1k']:.2f} | {r['load']} |")
    for impl in bulls:
        ratios = sorted(r["ours_over_it"] for r in rows if r["impl"] == impl)
        if len(ratios) < 2:
            agree = "one round only (BENCH_ROUNDS=N runs more)"
        elif any(b <= a * 1.1 for a, b in zip(ratios, ratios[1:])):
            agree = "yes"
        else:
            agree = "no (run more rounds: BENCH_ROUNDS)"
        print(f"\nOurs / {impl} over {len(ratios)} round(s): median {median(ratios):.2f}x, "
              f"{ratios[0]:.2f}-{ratios[-1]:.2f}x; two rounds within 10% of each other: {agree}")
    return rows


def print_targets(sections):
    """The performance targets the `sections` of this run measured, each with what it
    measured and whether it is met: one table, so a run says plainly where the queue stands."""
    rows = []

    def target(what, measured, met):
        rows.append((what, measured, "yes" if met else "**no**"))

    for size, compared in sorted(RESULTS.get("compare", {}).items()):
        ratios = sorted(r["ours_over_it"] for r in compared if r["impl"] == "bullmq-rs")
        if ratios:
            m = median(ratios)
            target(f"drain jobs/s ≥ 1.0x the BullMQ Rust port at {size:,} LoginIds",
                   f"median {m:.3f}x over {len(ratios)} round(s) ({ratios[0]:.3f}-{ratios[-1]:.3f}x)", m >= 1.0)
        cmds = sorted(r["cmds_per_job"] for r in compared if r["impl"] == OURS)
        if cmds:
            c = median(cmds)
            target(f"Redis commands per job, counting those inside Lua, ≤ 15 ({size:,} LoginIds, 5% 401)",
                   f"{c:.1f} (median of {len(cmds)} run(s))", c <= 15)
    imported = RESULTS.get("import")
    if imported:
        n = imported["n"]
        job_b, login_b = imported["queue_bytes"] / n, imported["registry_bytes"] / n
        target(f"Redis memory per queued authorize job ≤ 300 B ({n:,} logins)", f"{job_b:.0f} B", job_b <= 300)
        target(f"Redis memory per registered login ≤ 250 B ({n:,} logins)", f"{login_b:.0f} B", login_b <= 250)
        target(f"{n:,} logins imported in ≤ 10 s", f"{imported['import_s']:.1f} s", imported["import_s"] <= 10)
        target(f"{n:,} logins enqueued (`routine run`) in ≤ 10 s", f"{imported['run_s']:.1f} s",
               imported["run_s"] <= 10)
    footprint = RESULTS.get("rss", [])
    if footprint:
        idle = max(r["idle_kib"] for r in footprint)
        target("worker RSS idle ≤ 20 MiB", f"{idle / 1024:.1f} MiB (the largest of concurrency "
               + ", ".join(str(r["concurrency"]) for r in footprint) + ")", idle <= 20 * 1024)
    for r in footprint:
        if r["concurrency"] == 256:
            target("worker RSS at concurrency 256 ≤ 50 MiB", f"{r['load_kib'] / 1024:.1f} MiB (peak while draining)",
                   r["load_kib"] <= 50 * 1024)
    if not rows:
        return
    measured = ", ".join(s for s in sections if s in ("compare", "import", "rss"))
    print(f"\n### Targets (what this run's sections {measured} measured; load at the end {load()})\n")
    print("| target | this run | met? |\n|---|---|---|")
    for what, measured, met in rows:
        print(f"| {what} | {measured} | {met} |")


def median(sorted_values):
    """The median of a sorted, non-empty list."""
    n = len(sorted_values)
    return (sorted_values[(n - 1) // 2] + sorted_values[n // 2]) / 2


def crate_of(sym, dso):
    if "kernel" in dso:
        return "kernel (syscalls, scheduler, TCP)"
    if "libc" in dso or "ld-linux" in dso:
        if any(x in sym for x in ("malloc", "free", "realloc", "calloc")):
            return "libc malloc/free"
        if "mem" in sym:
            return "libc memcpy/memmove"
        return "libc other"
    name = sym.lstrip("<&").replace("dyn ", "").replace("mut ", "")
    name = name.split("::")[0] if "::" in name else name
    return name or "?"


def section_profile(redis):
    """perf record (cpu-clock; frame pointers are off, so self time by leaf symbol only)."""
    data = os.path.join(WORK, "perf.data")
    r = run_ours(redis, N, 1, profile=data, tag="prof")
    out = subprocess.run(["perf", "script", "-i", data, "-G", "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True).stdout
    by_thread, by_crate, by_sym, total = {}, {}, {}, 0
    pat = re.compile(r"^\s*(\S+)\s+[0-9a-f]+\s+(.*?)\s+\(([^)]*)\)\s*$")
    for line in out.splitlines():
        m = pat.match(line)
        if not m:
            continue
        comm, sym, dso = m.groups()
        total += 1
        by_thread[comm] = by_thread.get(comm, 0) + 1
        c = crate_of(sym, dso)
        by_crate[c] = by_crate.get(c, 0) + 1
        key = re.sub(r"::h[0-9a-f]{16}$", "", sym)[:140]
        by_sym[key] = by_sym.get(key, 0) + 1
    pct = lambda v: 100.0 * v / max(total, 1)
    top = lambda d, k: sorted(d.items(), key=lambda kv: -kv[1])[:k]
    ours = sum(v for k, v in by_crate.items() if k in ("shared", "worker"))
    RESULTS["profile"] = {"run": {k: v for k, v in r.items() if k != "redis_cmds"}, "samples": total,
                          "threads": by_thread, "crates": by_crate, "top_symbols": top(by_sym, 40),
                          "own_code_pct": pct(ours)}
    print(f"\n### Profile of one worker (perf record -e cpu-clock -F 999, N = {N:,}, "
          f"{r['jobs_per_s']:,.0f} jobs/s, load {r['load']}; {total} samples)\n")
    print("Threads: " + ", ".join(f"{k} {pct(v):.1f}%" for k, v in top(by_thread, 6)))
    print(f"\nSelf time in the worker's own crates (shared::, worker::): **{pct(ours):.1f}%**\n")
    print("| self time by crate / area | % of worker CPU |\n|---|---|")
    for k, v in top(by_crate, 15):
        print(f"| {k} | {pct(v):.1f} |")
    print("\n| top symbols (self) | % |\n|---|---|")
    for k, v in top(by_sym, 20):
        print(f"| `{k.replace('|', '/')}` | {pct(v):.1f} |")


def script_label(args):
    """A SLOWLOG entry's command, a script named by the queue or key of its first key:
    `EVALSHA <sha> (19 keys, detail)`; the namespace left out."""
    name = args[0].upper()
    if name not in ("EVALSHA", "EVAL", "FCALL") or len(args) < 3:
        return name
    first = args[3] if len(args) > 3 and args[2] != "0" else ""
    where = re.sub(r"^\{?[^:}]*:", "", first).replace("}", "")
    where = where.split(":")[0] if where else "no keys"
    return f"{name} {args[1][:8]} ({args[2]} keys, {where})"


def section_anatomy(redis):
    """Where the side-by-side drain's time goes, at BENCH_COMPARE_N's first size (5% 401,
    one process): ours at three concurrencies; ours and the BullMQ Rust port (Node BullMQ
    when the port is not built), alternated BENCH_ROUNDS times, with the machine's idle
    share and each process' CPU and run-queue wait (SchedWatch); Redis' time in scripts
    and in commands over one more drain of ours (CommandTimeWatch); and the same by script
    and by command, with the commands the scripts ran told from those sent alone, over a
    last drain with every command logged (SlowlogWatch: untimed, the logging slows Redis)."""
    size = COMPARE_NS[0]
    logins_txt, bulls = side_by_side_inputs(size)
    sweep = []
    for conc in (16, CONC, 4 * CONC):
        log(f"anatomy: ours at concurrency {conc} (load {load()})")
        sweep.append((conc, run_ours(redis, size, 1, conc=conc, rules=MIX_RULES, tag="anat")))
    print(f"\n### Where the drain's time goes (N = {size:,}, 5% 401, one process)\n")
    print("Ours at three concurrencies per queue, one after the other:\n")
    print("| concurrency per queue | jobs/s | worker / Redis / simulator CPU ms per LoginId | load |\n|---|---|---|---|")
    for conc, r in sweep:
        c = r["cpu_per_1k"]
        print(f"| {conc} | {r['jobs_per_s']:,.0f} | {c['workers']:.3f} / {c['redis']:.3f} / {c['sim']:.3f} | {r['load']} |")
    rows = []
    for rnd in range(1, ROUNDS + 1):
        order = ["ours"] + bulls[:1] if rnd % 2 == 1 else bulls[:1] + ["ours"]
        for impl in order:
            log(f"anatomy: round {rnd}, {impl} with the scheduler's figures (load {load()})")
            watch = SchedWatch()
            if impl == "ours":
                r = run_ours(redis, size, 1, rules=MIX_RULES, tag="anat", watch=watch)
                rows.append((rnd, OURS, r["jobs_per_s"], r["watched"], r["load"]))
            else:
                sim = start_sim(MIX_RULES)
                r = run_bull(redis, impl, size, logins_txt, sim, watch=watch)
                sim.stop()
                rows.append((rnd, impl, r["jobs_per_s"], r["watched"], r["load"]))
    print(f"\nThe machine's idle share over each drain, and each process over {SchedWatch.WINDOW:.0f} s from "
          f"{SchedWatch.SETTLE} s after the start: cores on a CPU / cores runnable but waiting for one "
          "(`/proc/<pid>/task/*/schedstat`):\n")
    print("| round | implementation | jobs/s | machine idle | worker | Redis | simulator | load |\n|---|---|---|---|---|---|---|---|")

    def cores(v):
        return "-" if v is None else f"{v[0]:.2f} / {v[1]:.2f}"

    def share(v):
        return "-" if v is None else f"{v:.0%}"
    for rnd, impl, jps, w, ld in rows:
        print(f"| {rnd} | {impl} | {jps:,.0f} | {share(w['idle'])} | {cores(w['worker'])} | {cores(w['Redis'])} "
              f"| {cores(w['simulator'])} | {ld} |")
    log(f"anatomy: ours with Redis' command times (load {load()})")
    r = run_ours(redis, size, 1, rules=MIX_RULES, tag="anat", watch=CommandTimeWatch(redis))
    stats = r["watched"]
    script_usec = sum(u for k, (_, u) in stats.items() if k in ("evalsha", "eval", "fcall"))
    command_usec = sum(u for k, (_, u) in stats.items() if k not in ("evalsha", "eval", "fcall"))
    print(f"\nRedis' own time over a drain of its own (INFO commandstats, nothing logged; "
          f"{r['jobs_per_s']:,.0f} jobs/s; Redis CPU {r['cpu_per_1k']['redis'] * 1000:.0f} us per LoginId): "
          f"scripts {script_usec / size:.1f} us per LoginId, every other command (those the scripts ran, the "
          f"few sent alone, the driver's polling) {command_usec / size:.1f}.")
    log(f"anatomy: ours with every command logged (load {load()})")
    r = run_ours(redis, size, 1, rules=MIX_RULES, tag="anat", watch=SlowlogWatch(redis))
    by, scripts, inside, alone = {}, 0, 0, 0
    for usec, args, by_script in r["watched"]:
        label = script_label(args)
        if label == args[0].upper():
            label += " (in scripts)" if by_script else " (sent alone)"
            if by_script:
                inside += usec
            else:
                alone += usec
        else:
            scripts += usec
        calls, total = by.get(label, (0, 0))
        by[label] = (calls + 1, total + usec)
    print(f"\nThe same by script and by command over one more drain, every command logged (SLOWLOG at 0, "
          f"wall time; {r['jobs_per_s']:,.0f} jobs/s). A script's time includes the commands it ran and their "
          f"logging: scripts {scripts / size:.1f} us per LoginId, the commands they ran {inside / size:.1f}, "
          f"commands sent alone {alone / size:.1f}.\n")
    print("| command | calls per LoginId | us per LoginId | us per call |\n|---|---|---|---|")
    for label, (calls, total) in sorted(by.items(), key=lambda kv: -kv[1][1])[:20]:
        print(f"| `{label}` | {calls / size:.2f} | {total / size:.1f} | {total / calls:.1f} |")
    RESULTS["anatomy"] = {"n": size, "concurrency": [(c, r2["jobs_per_s"]) for c, r2 in sweep],
                          "sched": rows, "commandstats": stats, "slowlog": by}


SECTIONS = {"e2e": section_e2e, "redis": section_redis, "import": section_import,
            "routine": section_routine, "cluster": section_cluster,
            "rss": section_rss, "compare": section_compare, "profile": section_profile,
            "anatomy": section_anatomy}


def main():
    # The anatomy re-runs the drain six times or more to take it apart: only when named.
    wanted = sys.argv[1:] or [s for s in SECTIONS if s != "anatomy"]
    m = RESULTS["machine"]
    print(f"Machine: {m['nproc']} cores ({m['cpu']}), mem: {m['free']}, Redis {m['redis']}, "
          f"load at start {m['load']}, {RESULTS['started']}")
    redis = RedisServer()
    try:
        for s in wanted:
            t = time.monotonic()
            SECTIONS[s](redis)
            sys.stdout.flush()
            log(f"section {s}: {time.monotonic() - t:.0f} s")
        print_targets(wanted)
    finally:
        redis.stop()
        os.makedirs(os.path.join(ROOT, "bench/results"), exist_ok=True)
        with open(os.path.join(ROOT, "bench/results/latest.json"), "w") as f:
            json.dump(RESULTS, f, indent=1, default=str)
        log(f"logs in {WORK}")


if __name__ == "__main__":
    main()
