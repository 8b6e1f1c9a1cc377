"""Shared plumbing for the benchmark drivers: a private redis-server, the
simulator, the release binaries, /proc readings and a tiny RESP client.

Nothing here touches the shared Redis at 127.0.0.1:6379: every figure is taken on a
redis-server this module starts on a free port and shuts down afterwards.
"""

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release")
CLK_TCK = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="nightly-refresh-bench.")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load():
    return "%.2f" % os.getloadavg()[0]


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0])
    return out.get("VmRSS", 0), out.get("VmHWM", 0)


def idle_ticks():
    """(idle + iowait, all) clock ticks of the whole machine so far, from /proc/stat (the
    first eight fields: guest time is counted in user time already)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return v[3] + v[4], sum(v)


def schedstat(pids):
    """(ns on a CPU, ns runnable but waiting for one) of the live threads of `pids`, summed
    (/proc/<pid>/task/*/schedstat). A thread that ends between two readings drops out of
    the second: read threads that live as long as their process (a Tokio runtime's, Redis'
    main thread)."""
    run = wait = 0
    for pid in pids:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                    fields = f.read().split()
            except OSError:
                continue
            run, wait = run + int(fields[0]), wait + int(fields[1])
    return run, wait


class SchedWatch:
    """What the machine's CPUs do during one drain, for the processes it is given when the
    drain starts: the machine's idle share over the whole drain and, over WINDOW seconds
    from SETTLE seconds after the start (start-up left out), each process' time on a CPU
    and time runnable but waiting for one, in cores (seconds per second). A drain shorter
    than SETTLE + WINDOW, or one whose process ended inside the window, has no
    per-process figures."""

    SETTLE, WINDOW, EVERY = 0.3, 1.0, 0.02

    def start(self, pids):
        """`pids`: name -> pids of the processes to watch. The drain starts now."""
        self.pids, self.idle, self.window, self.lost = pids, [], [], False
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        t0 = time.monotonic()
        while not self.done.is_set():
            now = time.monotonic()
            self.idle.append(idle_ticks())
            due = (not self.window and now - t0 >= self.SETTLE) or \
                (len(self.window) == 1 and now - self.window[0][0] >= self.WINDOW)
            if due and not self.lost:
                try:
                    self.window.append((now, {k: schedstat(p) for k, p in self.pids.items()}))
                except OSError:
                    self.lost = True
            time.sleep(self.EVERY)

    def stop(self):
        """The drain ended: {"idle": share of the machine's CPU time idle (None with fewer
        than two readings), name: (run cores, wait cores) or None}."""
        self.done.set()
        self.thread.join()
        out = {"idle": None}
        if len(self.idle) >= 2:
            (i0, t0), (i1, t1) = self.idle[0], self.idle[-1]
            out["idle"] = (i1 - i0) / (t1 - t0) if t1 > t0 else None
        complete = len(self.window) == 2 and not self.lost
        for k in self.pids:
            out[k] = None
            if complete:
                (a_t, a), (b_t, b) = self.window
                span = b_t - a_t
                out[k] = ((b[k][0] - a[k][0]) / 1e9 / span, (b[k][1] - a[k][1]) / 1e9 / span)
        return out


class SlowlogWatch:
    """Every command Redis runs during one drain, with the microseconds it took, from
    SLOWLOG at a threshold of 0: a script's entry includes the commands it runs, which are
    logged too, from client `?:0`. The driver's own connection (its polling) is left out.
    The durations are wall time, and logging every command slows Redis (a script's entry
    includes the logging of the commands it ran): use it in a run of its own, never one
    that is timed, and read its split of a script's time as an upper bound on the script's
    own share. The threshold and the log's length are put back afterwards."""

    def __init__(self, redis, capacity=4_000_000):
        self.c, self.capacity = redis.c, capacity
        self.own = "%s:%d" % redis.c.sock.getsockname()[:2]

    def start(self, _pids=None):
        self.saved = {k: self.c("CONFIG", "GET", k)[1] for k in ("slowlog-log-slower-than", "slowlog-max-len")}
        self.c("CONFIG", "SET", "slowlog-max-len", str(self.capacity))
        self.c("SLOWLOG", "RESET")
        self.c("CONFIG", "SET", "slowlog-log-slower-than", "0")

    def stop(self):
        """The logged commands, oldest first: (microseconds, [argument, ...], True when a
        script ran it); the log keeps at most 32 arguments of a command and 128 bytes of
        each."""
        self.c("CONFIG", "SET", "slowlog-log-slower-than", "-1")
        entries = self.c("SLOWLOG", "GET", "-1")
        self.c("SLOWLOG", "RESET")
        for k, v in self.saved.items():
            self.c("CONFIG", "SET", k, v)
        return [(e[2], [str(a) for a in e[3]], e[4] == "?:0") for e in reversed(entries) if e[4] != self.own]


class CommandTimeWatch:
    """Redis' own count and microseconds per command over one drain, from INFO
    commandstats (commands that scripts run are counted under their own names too, and a
    script's time includes them). Nothing is logged, so Redis runs at its usual speed; the
    driver's polling, a few hundred commands, is counted with the rest."""

    def __init__(self, redis):
        self.c = redis.c

    def start(self, _pids=None):
        self.before = self.c.command_times()

    def stop(self):
        """{command: (calls, microseconds)} during the drain."""
        after = self.c.command_times()
        out = {}
        for k, (calls, usec) in after.items():
            c0, u0 = self.before.get(k, (0, 0))
            if calls > c0:
                out[k] = (calls - c0, usec - u0)
        return out


def encode(args):
    """One command in RESP: an array of bulk strings."""
    out = bytearray(b"*%d\r\n" % len(args))
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return bytes(out)


class CallgrindWatch:
    """Switches the counting of a redis-server run under `valgrind --tool=callgrind
    --instr-atstart=no` on and off; a drain's `watch`: it counts from the workers' start
    until every job is settled."""

    def __init__(self, pid):
        self.pid = pid

    def _instrument(self, state):
        subprocess.run(["callgrind_control", "-i", state, str(self.pid)], check=True, capture_output=True)

    def start(self, _pids=None):
        self._instrument("on")

    def stop(self):
        self._instrument("off")


def callgrind_instructions(out_file):
    """The instructions callgrind counted, from its output file (once the process ended)."""
    with open(out_file) as f:
        totals = [line for line in f if line.startswith("totals:")]
    return int(totals[-1].split()[1])


def bulk_strings(args):
    """`args` as RESP bulk strings, without the array header `encode` puts before them: to
    join one call from pieces encoded apart."""
    encoded = encode(args)
    return encoded[encoded.index(b"\r\n") + 2:]


class Resp:
    """A minimal blocking RESP2 client: enough for INFO, HGET, LLEN and friends."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def __call__(self, *args):
        self.sock.sendall(encode(args))
        return self._reply()

    def pipeline(self, commands):
        """Sends every command of `commands` (each a list of arguments) at once; returns
        their replies in order."""
        self.sock.sendall(b"".join(encode(args) for args in commands))
        return [self._reply() for _ in commands]

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("Redis closed the connection")
        self.buf += data

    def _line(self):
        while b"\r\n" not in self.buf:
            self._recv()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._recv()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"bad reply {line!r}")

    def info(self, section="all"):
        d = {}
        for line in self("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                d[k] = v
        return d

    def command_times(self):
        """{command: (calls, microseconds)} (includes commands run inside Lua scripts)."""
        out = {}
        for k, v in self.info("commandstats").items():
            m = re.search(r"calls=(\d+),usec=(\d+)", v)
            out[k.replace("cmdstat_", "")] = (int(m.group(1)), int(m.group(2)))
        return out

    def commandstats(self):
        """{command: calls} (includes commands run inside Lua scripts)."""
        return {k: calls for k, (calls, _) in self.command_times().items()}

    def cpu_seconds(self):
        """Redis' own CPU seconds, from INFO (microseconds, where /proc counts 10 ms ticks)."""
        cpu = self.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


class RedisServer:
    """A private redis-server on a free port; `stop()` shuts it down."""

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="redis.", dir=WORK)
        subprocess.run(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "yes", "--dir", self.dir, "--pidfile", f"{self.dir}/redis.pid",
             "--logfile", f"{self.dir}/redis.log"],
            check=True, stdout=subprocess.DEVNULL)
        self._connect(100, 0.05)
        self.pid = int(open(f"{self.dir}/redis.pid").read())

    def _connect(self, tries, pause):
        """Waits for the server on self.port to answer PING (`tries` times, `pause` s apart)."""
        for _ in range(tries):
            try:
                self.c = Resp(self.port)
                self.c("PING")
                break
            except OSError:
                time.sleep(pause)
        else:
            raise RuntimeError(f"redis-server on port {self.port} did not answer")
        self.url = f"redis://127.0.0.1:{self.port}"
        self.mode = "standalone"

    def cpu(self):
        return cpu_seconds(self.pid)

    def flush(self):
        # our own server: nobody else's keys live here
        self.c("FLUSHALL")

    def stop(self):
        try:
            self.c("SHUTDOWN", "NOSAVE")
        except Exception:
            pass


def key_slot(key):
    """The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag, mod 16384)."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start != -1:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    crc = 0
    for byte in k:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc % 16384


class ClusterResp:
    """Sends a one-key command to the master that serves the key's slot; `info` and
    `commandstats` sum the masters' figures (what the driver reads of a whole cluster)."""

    def __init__(self, ports):
        self.nodes = {p: Resp(p) for p in ports}
        self.slots = []
        for lo, hi, master, *_ in next(iter(self.nodes.values()))("CLUSTER", "SLOTS"):
            self.slots.append((int(lo), int(hi), int(master[1])))

    def node_of(self, key):
        slot = key_slot(key)
        return next(self.nodes[p] for lo, hi, p in self.slots if lo <= slot <= hi)

    def __call__(self, *args):
        return self.node_of(args[1])(*args)

    def per_node(self, section):
        return {p: c.info(section) for p, c in self.nodes.items()}

    def info(self, section="all"):
        total = {}
        for info in self.per_node(section).values():
            for k, v in info.items():
                if re.fullmatch(r"\d+", v):
                    total[k] = total.get(k, 0) + int(v)
                else:
                    total.setdefault(k, v)
        return {k: str(v) for k, v in total.items()}

    def commandstats(self):
        out = {}
        for c in self.nodes.values():
            for k, v in c.commandstats().items():
                out[k] = out.get(k, 0) + v
        return out


class RedisCluster:
    """A private Redis Cluster of `masters` masters and no replicas, with the same
    persistence as RedisServer (none), on free ports; the same interface as RedisServer
    for the driver (`url`, `c`, `flush`, `cpu`, `stop`), plus `used_memory_per_shard`."""

    def __init__(self, masters=3):
        self.ports, self.dirs = [], []
        while len(self.ports) < masters:
            p = free_port()
            if p < 55000 and p not in self.ports:  # the cluster bus listens on port + 10000
                self.ports.append(p)
        for p in self.ports:
            d = tempfile.mkdtemp(prefix=f"cluster.{p}.", dir=WORK)
            self.dirs.append(d)
            subprocess.run(
                ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"{d}/nodes.conf", "--save", "", "--appendonly", "no",
                 "--daemonize", "yes", "--dir", d, "--pidfile", f"{d}/redis.pid",
                 "--logfile", f"{d}/redis.log"],
                check=True, stdout=subprocess.DEVNULL)
        for p in self.ports:
            for _ in range(100):
                try:
                    Resp(p)("PING")
                    break
                except OSError:
                    time.sleep(0.05)
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL)
        for _ in range(200):
            if all(Resp(p).info("cluster").get("cluster_state") == "ok" for p in self.ports):
                break
            time.sleep(0.05)
        self.pids = [int(open(f"{d}/redis.pid").read()) for d in self.dirs]
        self.c = ClusterResp(self.ports)
        self.url = ",".join(f"redis://127.0.0.1:{p}" for p in self.ports)
        self.mode = "cluster"

    def flush(self):
        for c in self.c.nodes.values():
            c("FLUSHALL")

    def cpu(self):
        return sum(cpu_seconds(pid) for pid in self.pids)

    def used_memory_per_shard(self):
        return [int(info["used_memory"]) for info in self.c.per_node("memory").values()]

    def stop(self):
        for c in self.c.nodes.values():
            try:
                c("SHUTDOWN", "NOSAVE")
            except Exception:
                pass


class Proc:
    def __init__(self, argv, env=None, log=None, stdout=None):
        self.log = log or os.path.join(WORK, os.path.basename(argv[0]) + f".{time.time_ns()}.log")
        self.p = subprocess.Popen(argv, env=env, stdout=stdout or open(self.log + ".out", "w"),
                                  stderr=open(self.log, "w"))
        self.pid = self.p.pid

    def stop(self, sig=15, timeout=30):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_sim(rules=None, latency=None):
    argv = [f"{BIN}/flinks-sim", "--listen", "127.0.0.1:0"]
    if rules:
        argv += ["--rules", rules]
    if latency:
        argv += ["--latency-ms", latency]
    env = dict(os.environ, RUST_LOG="warn")
    out = os.path.join(WORK, f"sim.{time.time_ns()}.out")
    sim = Proc(argv, env=env, stdout=open(out, "w"))
    for _ in range(200):
        m = re.search(r"listening on (\S+)", open(out).read())
        if m:
            sim.url = m.group(1)
            return sim
        time.sleep(0.025)
    raise RuntimeError("flinks-sim did not start")


def write_logins(path, n, prefix=""):
    import uuid
    with open(path, "w") as f:
        f.write("LoginId,Active,Tag\n")
        for _ in range(n):
            f.write(f"{uuid.uuid4()},true,bench\n")


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def histogram(texts, name, queue):
    """Merged cumulative buckets [(le, count)] of `name{queue=…}` over several scrapes."""
    merged = {}
    pat = re.compile(name + r'_bucket\{([^}]*)\} (\S+)')
    for text in texts:
        for labels, v in pat.findall(text):
            if f'queue="{queue}"' not in labels:
                continue
            le = re.search(r'le="([^"]+)"', labels).group(1)
            le = float("inf") if le == "+Inf" else float(le)
            merged[le] = merged.get(le, 0) + float(v)
    return sorted(merged.items())


def quantile(buckets, q):
    """Linear interpolation inside the Prometheus bucket holding quantile q."""
    if not buckets or buckets[-1][1] == 0:
        return float("nan")
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


def machine():
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout
    redis_v = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(),
        "free": free.splitlines()[1],
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?"),
        "redis": redis_v.split()[2],
        "load": load(),
    }


def cleanup():
    shutil.rmtree(WORK, ignore_errors=True)


DUMP = open(os.environ['BENCH_MONITOR_DUMP'], 'ab') if os.environ.get('BENCH_MONITOR_DUMP') else None


class Monitor:
    """Counts the commands Redis executes via MONITOR, split into the ones clients sent
    (round trips, pipelined or not) and the ones Lua scripts ran. MONITOR slows Redis
    down, so only counting runs use it, never the timed ones."""

    def __init__(self, port, exclude=()):
        import threading
        self.exclude = {("%s:%d" % a).encode() for a in exclude}
        self.client, self.lua = {}, {}
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.stop_flag = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        buf = b""
        pat = re.compile(rb'^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"')
        while not self.stop_flag:
            try:
                data = self.sock.recv(1 << 20)
            except OSError:
                return
            if not data:
                return
            buf += data
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                if DUMP:
                    DUMP.write(line + b"\n")
                m = pat.match(line)
                if not m:
                    continue
                who, cmd = m.group(1), m.group(2).decode().lower()
                addr = who.split(b" ")[-1]
                if addr in self.exclude:
                    continue
                d = self.lua if addr == b"lua" else self.client
                d[cmd] = d.get(cmd, 0) + 1

    def stop(self):
        time.sleep(0.3)  # let the last lines arrive
        self.stop_flag = True
        self.sock.close()
        return self.client, self.lua

    def snapshot(self):
        return dict(self.client), dict(self.lua)
