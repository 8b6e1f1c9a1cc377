"""Checks that the deployment files agree with the rest of the repo (run by
scripts/check-deploy): names Prometheus scrapes, Grafana's provisioning paths, the settings
the binaries read, the shutdown grace, and least privilege: the production image (the
Dockerfile's last stage) ships no simulator, each Kubernetes workload mounts only the
secrets on its allow-list and none as a plain environment value, images are pinned (the
app's by digest), and compose keeps the Redis password in secret files. Schema validity is
checked by the real validators before this.
"""

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
errors = []


def check(cond, msg):
    if not cond:
        errors.append(msg)


def duration_s(text):
    m = re.fullmatch(r"(\d+)s", str(text))
    return int(m.group(1)) if m else None


# --- settings the binaries read (shared/src/config.rs) ------------------------------------
config_rs = (ROOT / "shared/src/config.rs").read_text()
variables = set(re.findall(r'^\s+\("([A-Z_]+)", (?:Some|None)', config_rs, re.M))
secrets_block = config_rs.split("pub const SECRETS", 1)[1].split("];", 1)[0]
secrets = set(re.findall(r'"([A-Z_]+)"', secrets_block))
check(secrets, "config.rs: SECRETS list found")

# --- Dockerfile -------------------------------------------------------------------------
docker = (ROOT / "Dockerfile").read_text()


def dockerfile_stages(text):
    """[(name, base, instructions)] of a Dockerfile: comments dropped, continuations joined."""
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not current:
            continue
        line = raw.rstrip()
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    stages = []
    for line in lines:
        m = re.match(r"FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.I)
        if m:
            stages.append((m.group(2) or str(len(stages)), m.group(1), []))
        elif stages:
            stages[-1][2].append(line)
    return stages


def stage_chain(stages, name):
    """`name` and every stage it is built FROM, nearest first."""
    by_name = {n: (b, body) for n, b, body in stages}
    chain = []
    while name in by_name and name not in chain:
        chain.append(name)
        name = by_name[name][0]
    return chain


def shipped_text(stages, name):
    """What a stage's image holds: its own and its FROM-ancestors' instructions."""
    by_name = {n: body for n, _, body in stages}
    return "\n".join(line for n in stage_chain(stages, name) for line in by_name[n])


def production_ships_sim(text):
    """Why the default (last) stage of a Dockerfile ships the simulator (empty: it does not)."""
    stages = dockerfile_stages(text)
    if not stages:
        return ["no stages"]
    final = stages[-1][0]
    shipped = shipped_text(stages, final)
    return [f"production stage {final!r} (the default target) ships the simulator: {line}"
            for line in shipped.splitlines() if "flinks-sim" in line or "sim-rules" in line]


def docker_self_test():
    """The rule above on known Dockerfiles, so it cannot silently stop catching anything."""
    one_image = "FROM r AS build\nRUN cargo build\nFROM d AS runtime\nCOPY --from=build /out/worker \\\n  /out/flinks-sim /usr/local/bin/\n"
    assert production_ships_sim(one_image), "one image with every binary ships the simulator"
    split = ("FROM d AS base\nRUN true\nFROM base AS sim\nCOPY --from=b /out/flinks-sim /usr/local/bin/\n"
             "FROM base AS runtime\n# not flinks-sim\nCOPY --from=b /out/worker /usr/local/bin/\n")
    assert not production_ships_sim(split), "sim in its own stage, production last"
    inherited = "FROM d AS sim\nCOPY flinks-sim/rules/ /etc/x/\nFROM sim AS runtime\nCOPY a b\n"
    assert production_ships_sim(inherited), "production built FROM the sim stage ships it"


docker_self_test()
stages = dockerfile_stages(docker)
stage_names = [n for n, _, _ in stages]
final_stage = stage_names[-1] if stage_names else ""
check(re.search(r"^ARG RUST_IMAGE=rust:1-bookworm$", docker, re.M) and re.search(r"^ARG RUNTIME_IMAGE=", docker, re.M),
      "Dockerfile: ARG RUST_IMAGE=rust:1-bookworm and ARG RUNTIME_IMAGE")
check("FROM ${RUST_IMAGE} AS deps" in docker, "Dockerfile: rust:1-bookworm deps stage")
check("cargo build --release --locked" in docker, "Dockerfile: cargo build --release --locked")
errors.extend(f"Dockerfile: {why}" for why in production_ships_sim(docker))
runtime = shipped_text(stages, final_stage)
check("ca-certificates" in runtime and "USER 10001" in runtime, "Dockerfile: runtime has ca-certificates and a non-root USER")
check("/usr/local/bin/" in runtime, "Dockerfile: binaries in /usr/local/bin")
for binary in ("producer", "worker"):
    check(re.search(rf"COPY --from=\S+ .*/{binary}\b.* /usr/local/bin/", runtime),
          f"Dockerfile: production stage {final_stage!r} must ship {binary}")
check("sim" in stage_names, "Dockerfile: a `sim` stage (docker build --target sim) for the simulator")
if "sim" in stage_names:
    sim = shipped_text(stages, "sim")
    check("flinks-sim" in sim and "sim-rules" in sim, "Dockerfile: the sim stage ships flinks-sim and its rules")
    check("USER 10001" in sim, "Dockerfile: the sim stage runs as user 10001")
for tool in ("cargo", "gcc", "build-essential"):
    check(f"install -y --no-install-recommends {tool}" not in runtime, f"Dockerfile: runtime installs {tool}")
check((ROOT / ".dockerignore").read_text().count("target/") >= 1, ".dockerignore: excludes target/")


# --- image references: pinned, never :latest or untagged ----------------------------------
def image_problem(ref):
    """Why an image reference is mutable in a way a deployment must not be (None: fine)."""
    ref = str(ref).strip().strip("\"'")
    if "@sha256:" in ref:
        return None if re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", ref) else "malformed digest"
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return "untagged (means :latest)"
    if last.endswith(":latest"):
        return ":latest"
    return None


assert image_problem("nightly-refresh") and image_problem("r.io/x:latest") and image_problem("r.io:5000/x")
assert not image_problem("r.io:5000/x:1.2") and not image_problem("r.io/x@sha256:" + "a" * 64)
assert image_problem("r.io/x@sha256:abc")

# --- docker-compose.yml -----------------------------------------------------------------
compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
services = compose["services"]
prom = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
for job in prom["scrape_configs"]:
    for sd in job.get("dns_sd_configs", []):
        for name in sd["names"]:
            check(name in services, f"compose: Prometheus discovers service {name!r}, missing")
    for sc in job.get("static_configs", []):
        for target in sc["targets"]:
            host = target.split(":")[0]
            check(host in services, f"compose: Prometheus scrapes {target}, no such service")
check(services.get("worker", {}).get("deploy", {}).get("replicas") == 3, "compose: worker deploy.replicas 3")
check(services.get("producer", {}).get("command") == ["producer", "schedule"], "compose: producer runs `producer schedule`")
redis_cmd = " ".join(services["redis"]["command"])
for flag in ("--appendonly yes", "--appendfsync everysec", "requirepass"):
    check(flag in redis_cmd, f"compose: redis {flag}")

prom_mounts = services["prometheus"]["volumes"]
for f in ("prometheus.yml", "rules.yml"):
    check(any(v.endswith(f"/etc/prometheus/{f}:ro") for v in prom_mounts), f"compose: prometheus mounts {f}")
# Alerts go to the compose Alertmanager; Kubernetes gets the same rules as a PrometheusRule.
am = services.get("alertmanager", {})
check(any(v.endswith("/etc/alertmanager/alertmanager.yml:ro") for v in am.get("volumes", [])),
      "compose: an alertmanager service mounting alertmanager/alertmanager.yml")
am_targets = [t for a in (prom.get("alerting") or {}).get("alertmanagers", [])
              for sc in a.get("static_configs", []) for t in sc.get("targets", [])]
check(am_targets and all(t.split(":")[0] in services for t in am_targets),
      f"prometheus.yml: alerting must target the compose alertmanager, got {am_targets}")
rules_groups = yaml.safe_load((ROOT / "prometheus/rules.yml").read_text())["groups"]
prom_rule = yaml.safe_load((ROOT / "deploy/k8s/monitoring/prometheusrule.yaml").read_text())
check(prom_rule.get("kind") == "PrometheusRule" and prom_rule["spec"]["groups"] == rules_groups,
      "deploy/k8s/monitoring/prometheusrule.yaml differs from prometheus/rules.yml: run scripts/sync-prometheusrule")


def github_anchor(heading):
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


readme_anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", (ROOT / "README.md").read_text(), re.M)}
for group in rules_groups:
    for rule in group["rules"]:
        if "alert" not in rule:
            continue
        url = rule.get("annotations", {}).get("runbook_url", "")
        check(url.startswith("README.md#") and url.split("#", 1)[1] in readme_anchors,
              f"rules.yml: {rule['alert']}'s runbook_url {url!r} is no README.md section")
        check("job=" not in rule["expr"].replace(" ", ""),
              f"rules.yml: {rule['alert']} names a scrape job; compose and Kubernetes name jobs differently")
pod_monitor = yaml.safe_load((ROOT / "deploy/k8s/monitoring/podmonitor.yaml").read_text())
pm_names = set(next(e["values"] for e in pod_monitor["spec"]["selector"]["matchExpressions"]
                    if e["key"] == "app.kubernetes.io/name"))
check(pm_names == {"nightly-refresh-worker", "nightly-refresh-producer"},
      f"podmonitor: selects {sorted(pm_names)}, expected the worker and producer pods")
check([e.get("port") for e in pod_monitor["spec"]["podMetricsEndpoints"]] == ["metrics"],
      "podmonitor: scrapes the port named metrics")

provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/provider.yml").read_text())
dash_path = provider["providers"][0]["options"]["path"]
graf = services["grafana"]["volumes"]
check(any(v.startswith("./grafana/dashboards:" + dash_path) for v in graf), f"compose: grafana mounts dashboards at {dash_path}")
check(any(v.startswith("./grafana/provisioning:/etc/grafana/provisioning") for v in graf), "compose: grafana provisioning mount")
check("127.0.0.1:3000:3000" in services["grafana"].get("ports", []), "compose: grafana on localhost:3000")
check("seed" in services, "compose: a one-shot seed service")


def compose_builds(svc):
    """(context, target) a compose service builds, or None."""
    build = svc.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        return (build, None)
    return (build.get("context", "."), build.get("target"))


sim_svc = services.get("flinks-sim", {})
sim_image = sim_svc.get("image")
check(compose_builds(sim_svc) == (".", "sim"), "compose: flinks-sim must build the Dockerfile's `sim` target")
app_services = {n: svc for n, svc in services.items()
                if str((svc.get("command") or [""])[0]) in ("producer", "worker")}
check(set(app_services) >= {"seed", "producer", "worker"}, f"compose: app services {sorted(app_services)}")
app_images = {str(svc.get("image")) for svc in app_services.values()}
check(len(app_images) == 1 and sim_image not in app_images,
      f"compose: app services must share the production image, not the simulator's: {sorted(app_images)}")
for name, svc in services.items():
    built = compose_builds(svc)
    if built is None:
        continue
    if svc.get("image") in app_images:
        check(built[1] in (None, final_stage),
              f"compose: {name} builds the production image {svc.get('image')} from target {built[1]!r}, not {final_stage!r}")
    check(not (svc.get("image") in app_images and built[1] == "sim"), f"compose: {name} tags the sim target as the app image")
check(any(compose_builds(svc) and svc.get("image") in app_images for svc in services.values()),
      "compose: no service builds the production image")
for name, svc in services.items():
    if name != "flinks-sim":
        check("flinks-sim" not in " ".join(map(str, svc.get("command") or [])), f"compose: {name} runs flinks-sim")
for name, svc in services.items():
    if "image" in svc:
        why = image_problem(svc["image"])
        check(why is None, f"compose: {name} image {svc['image']}: {why}")
compose_text = (ROOT / "docker-compose.yml").read_text()
graf_env = services["grafana"].get("environment", {})
check(str(graf_env.get("GF_SECURITY_ADMIN_PASSWORD", "")).startswith("${GRAFANA_ADMIN_PASSWORD:?"),
      "compose: Grafana's admin password must be required (${GRAFANA_ADMIN_PASSWORD:?...}), no default")
for name, svc in services.items():
    if not str(svc.get("image", "")).startswith("nightly-refresh"):
        continue
    check(svc.get("read_only") is True, f"compose: {name} must be read_only: true")
    check(svc.get("cap_drop") == ["ALL"], f"compose: {name} must cap_drop: [ALL]")
    check("no-new-privileges:true" in svc.get("security_opt", []), f"compose: {name} needs no-new-privileges")
    check(bool(svc.get("mem_limit")), f"compose: {name} needs a memory limit (mem_limit)")
    env = svc.get("environment") or {}
    base = str(env.get("FLINKS_BASE_URL", ""))
    host = re.sub(r"^http://([^/:]+).*", r"\1", base)
    if base.startswith("http://") and host not in ("127.0.0.1", "localhost", "[::1]"):
        check(str(env.get("FLINKS_ALLOW_INSECURE")).lower() == "true",
              f"compose: {name} reaches Flinks over plain http at {host}: set FLINKS_ALLOW_INSECURE=true")

# The Redis password lives in a file (compose `secrets:`), never in the compose file, the
# environment or a command line: Redis reads it from its secret, the apps read the URL that
# holds it through REDIS_URL_FILE (shared/src/config.rs SECRETS).
compose_secrets = compose.get("secrets") or {}
REDIS_PW, REDIS_URL_SECRET = "redis_password", "redis_url"
for sname in (REDIS_PW, REDIS_URL_SECRET):
    check(str(compose_secrets.get(sname, {}).get("file", "")).startswith("./deploy/compose/secrets/"),
          f"compose: top-level secret {sname} from a file under ./deploy/compose/secrets/")


# Beyond Redis, the web console reads its users file; nothing else does.
APP_EXTRA_SECRETS = {"console": {"console_users"}}


def service_secrets(svc):
    return {x if isinstance(x, str) else x.get("source") for x in svc.get("secrets", [])}


redis_svc = services["redis"]
check(service_secrets(redis_svc) == {REDIS_PW}, f"compose: redis mounts exactly the secret {REDIS_PW}")
check(f"requirepass $$(cat /run/secrets/{REDIS_PW})" in redis_cmd,
      f"compose: redis takes requirepass from /run/secrets/{REDIS_PW}")
check("docker-entrypoint.sh redis-server" in redis_cmd,
      "compose: redis starts through docker-entrypoint.sh (it drops root for the redis user)")
redis_health = " ".join(map(str, redis_svc.get("healthcheck", {}).get("test", [])))
check(f"/run/secrets/{REDIS_PW}" in redis_health, "compose: the redis healthcheck authenticates from the secret file")
check("REDIS_PASSWORD" not in compose_text and "nightly-refresh-dev" not in compose_text,
      "compose: no Redis password (or default) in docker-compose.yml")
for name, svc in services.items():
    env = svc.get("environment") or {}
    for key, value in (env.items() if isinstance(env, dict) else []):
        check(not re.search(r"rediss?://[^@/\s]*:[^@/\s]*@", str(value)), f"compose: {name} {key} holds a Redis password")
        check(key not in secrets, f"compose: {name} sets secret {key} in the environment (use {key}_FILE)")
for name, svc in app_services.items():
    env = svc.get("environment") or {}
    check(env.get("REDIS_URL_FILE") == f"/run/secrets/{REDIS_URL_SECRET}",
          f"compose: {name} needs REDIS_URL_FILE=/run/secrets/{REDIS_URL_SECRET}")
    want = {REDIS_URL_SECRET} | APP_EXTRA_SECRETS.get(name, set())
    check(service_secrets(svc) == want, f"compose: {name} mounts exactly the secrets {sorted(want)}")
check(not service_secrets(sim_svc), "compose: flinks-sim mounts no secret")
for sname, sdef in compose_secrets.items():
    users = [n for n, svc in services.items() if sname in service_secrets(svc)]
    check(users, f"compose: secret {sname} is mounted by no service")
# The Sentinel profile: a replica and three sentinels that start only with
# `--profile sentinel`, every one requiring the password from the secret file; the second
# compose file switches each app service to REDIS_MODE=sentinel with the sentinels' URL.
SENTINEL_NODES = ["redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"]
for name in SENTINEL_NODES:
    svc = services.get(name)
    check(svc is not None, f"compose: the sentinel profile needs service {name}")
    if svc is None:
        continue
    check(svc.get("profiles") == ["sentinel"], f"compose: {name} starts only with --profile sentinel")
    check(service_secrets(svc) == {REDIS_PW}, f"compose: {name} mounts exactly the secret {REDIS_PW}")
    cmd = " ".join(map(str, svc.get("command", [])))
    check(f"requirepass $$(cat /run/secrets/{REDIS_PW})" in cmd, f"compose: {name} requires the password from its secret")
    check("docker-entrypoint.sh redis-server" in cmd, f"compose: {name} starts through docker-entrypoint.sh")
    health = " ".join(map(str, svc.get("healthcheck", {}).get("test", [])))
    check(f"/run/secrets/{REDIS_PW}" in health, f"compose: the {name} healthcheck authenticates from the secret file")
check("masterauth $$(cat /run/secrets/redis_password)" in redis_cmd,
      "compose: redis has masterauth (a demoted master must resync from the promoted replica)")
for name in SENTINEL_NODES[1:]:
    cmd = " ".join(map(str, services.get(name, {}).get("command", [])))
    check("sentinel monitor nightly redis 6379 2" in cmd, f"compose: {name} monitors redis as nightly, quorum 2")
    check(f"sentinel auth-pass nightly $$(cat /run/secrets/{REDIS_PW})" in cmd, f"compose: {name} authenticates to the nodes")
sentinel_text = (ROOT / "deploy/compose/sentinel.yml").read_text()
sentinel_file = yaml.safe_load(sentinel_text)
check(not re.search(r"rediss?://[^@/\s]*:[^@/\s]*@", sentinel_text), "sentinel.yml: no Redis password in the file")
check(str((sentinel_file.get("secrets") or {}).get("redis_sentinel_url", {}).get("file", "")).startswith("./deploy/compose/secrets/"),
      "sentinel.yml: secret redis_sentinel_url from a file under ./deploy/compose/secrets/")
for name in app_services:
    svc = (sentinel_file.get("services") or {}).get(name) or {}
    env = svc.get("environment") or {}
    check(env.get("REDIS_MODE") == "sentinel" and env.get("REDIS_SENTINEL_MASTER") == "nightly",
          f"sentinel.yml: {name} needs REDIS_MODE=sentinel and REDIS_SENTINEL_MASTER=nightly")
    check(env.get("REDIS_URL_FILE") == "/run/secrets/redis_sentinel_url",
          f"sentinel.yml: {name} reads the sentinels' URL from /run/secrets/redis_sentinel_url")
    check(env.get("REDIS_SENTINEL_PASSWORD_FILE") == f"/run/secrets/{REDIS_PW}",
          f"sentinel.yml: {name} authenticates to the sentinels from /run/secrets/{REDIS_PW}")
    check(service_secrets(svc) == {"redis_sentinel_url", REDIS_PW}, f"sentinel.yml: {name} mounts the sentinel URL and password")
check("redis-sentinel-url" in (ROOT / "deploy/compose/make-secrets").read_text(),
      "compose: make-secrets writes secrets/redis-sentinel-url")
make_secrets = ROOT / "deploy/compose/make-secrets"
check(make_secrets.is_file() and make_secrets.stat().st_mode & 0o100, "compose: deploy/compose/make-secrets (executable) writes the secret files")
ignore = ROOT / "deploy/compose/secrets/.gitignore"
check(ignore.is_file() and "*" in ignore.read_text().split(), "compose: deploy/compose/secrets/.gitignore keeps the secret files out of git")

# --- deploy/k8s -------------------------------------------------------------------------
docs = []
for f in sorted((ROOT / "deploy/k8s").glob("*.yaml")):
    docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs if "metadata" in d}
cm = by_kind[("ConfigMap", "nightly-refresh-config")]["data"]
for key in cm:
    check(key in variables or key == "RUST_LOG", f"k8s ConfigMap: {key} is not a setting")
    check(key not in secrets, f"k8s ConfigMap: secret {key} in a ConfigMap")
secret_objs = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Secret"}
check(secret_objs, "k8s: no Secret")
secret_keys = {}
for sname, sobj in secret_objs.items():
    secret_keys[sname] = set(sobj.get("stringData") or {}) | set(sobj.get("data") or {})
    check(secret_keys[sname] <= secrets, f"k8s Secret {sname}: keys {secret_keys[sname] - secrets} are not secrets")

# Least privilege: the secrets each workload may read (as a file, an env value or envFrom),
# and the ones it cannot run without. The scheduler only claims the day in Redis, enqueues
# and runs the GetNightlyRefreshStatus pre-check (bearer); it never authorizes, reads
# accounts or writes results, so it holds no Flinks key and no results key.
SECRET_ALLOW = {
    "nightly-refresh-worker": {"REDIS_URL", "FLINKS_SECRET_KEY", "FLINKS_API_KEY", "RESULTS_ENCRYPTION_KEY"},
    "nightly-refresh-producer": {"REDIS_URL", "FLINKS_BEARER_SECRET"},
}
SECRET_REQUIRED = {
    "nightly-refresh-worker": {"REDIS_URL", "FLINKS_SECRET_KEY", "FLINKS_API_KEY"},
    "nightly-refresh-producer": {"REDIS_URL"},
}


def readable_secrets(pod, container, known):
    """{key: file path or None (an env value)} of every secret `container` can read.

    `known` maps Secret names to their keys; a Secret not in the manifests counts as the
    key "<name>:*", which no allow-list holds.
    """
    def keys_of(name, items):
        if items:
            return [(i["key"], i.get("path", i["key"])) for i in items]
        if name not in known:
            return [(f"{name}:*", f"{name}:*")]
        return [(k, k) for k in sorted(known[name])]

    vol_keys = {}
    for vol in pod.get("volumes", []):
        found = []
        if "secret" in vol:
            found += keys_of(vol["secret"].get("secretName"), vol["secret"].get("items"))
        for source in (vol.get("projected") or {}).get("sources", []):
            if "secret" in source:
                found += keys_of(source["secret"].get("name"), source["secret"].get("items"))
        vol_keys[vol["name"]] = found
    got = {}
    for mount in container.get("volumeMounts", []):
        for key, path in vol_keys.get(mount["name"], []):
            got[key] = mount["mountPath"].rstrip("/") + "/" + path
    for e in container.get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            got[ref["key"]] = None
    for src in container.get("envFrom", []):
        if "secretRef" in src:
            for key, _ in keys_of(src["secretRef"]["name"], None):
                got[key] = None
    return got


def secret_problems(name, pod, known):
    """Why a workload's pod reads more secrets than it may, or misses one it needs."""
    problems = []
    c = pod["containers"][0]
    got = readable_secrets(pod, c, known)
    env = {e["name"]: e for e in c.get("env", [])}
    extra = set(got) - SECRET_ALLOW[name]
    if extra:
        problems.append(f"{name}: reads secrets {sorted(extra)} beyond its allow-list {sorted(SECRET_ALLOW[name])}")
    missing = SECRET_REQUIRED[name] - set(got)
    if missing:
        problems.append(f"{name}: does not mount the secrets it needs: {sorted(missing)}")
    for key, path in got.items():
        if path is None:
            problems.append(f"{name}: secret {key} as a plain env value (mount it and set {key}_FILE)")
        elif key in secrets and env.get(f"{key}_FILE", {}).get("value") != path:
            problems.append(f"{name}: {key}_FILE must point at the mounted secret {path}")
    for var in env:
        if var.endswith("_FILE") and var[:-5] in secrets and var[:-5] not in got:
            problems.append(f"{name}: {var} set but {var[:-5]} is not mounted")
        if var in secrets:
            problems.append(f"{name}: secret {var} as a plain env value")
    return problems


def secrets_self_test():
    """The allow-list on known pods, so it cannot silently stop catching anything."""
    known = {"all": set(SECRET_ALLOW["nightly-refresh-worker"]) | {"FLINKS_BEARER_SECRET"},
             "redis": {"REDIS_URL"}}

    def pod(*secret_names, env=()):
        return {
            "containers": [{"name": "c",
                            "env": [{"name": f"{k}_FILE", "value": f"/s/{k}"} for k in env],
                            "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "projected": {"sources": [{"secret": {"name": n}} for n in secret_names]}}],
        }
    assert secret_problems("nightly-refresh-producer", pod("all", env=known["all"]), known), "whole Secret"
    assert not secret_problems("nightly-refresh-producer", pod("redis", env=["REDIS_URL"]), known), "redis only"
    assert secret_problems("nightly-refresh-producer", pod("other", env=["REDIS_URL"]), known), "unknown Secret"
    assert secret_problems("nightly-refresh-worker", pod("redis", env=["REDIS_URL"]), known), "worker lacks keys"


secrets_self_test()
grace = duration_s(cm.get("SHUTDOWN_GRACE", "25s"))
for name in ("nightly-refresh-worker", "nightly-refresh-producer"):
    dep = by_kind[("Deployment", name)]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(pod["terminationGracePeriodSeconds"] > grace, f"{name}: terminationGracePeriodSeconds must exceed SHUTDOWN_GRACE")
    check(c["readinessProbe"]["httpGet"]["path"] == "/readyz", f"{name}: readiness /readyz")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz", f"{name}: liveness /healthz")
    check(c["ports"][0]["containerPort"] == 9464, f"{name}: metrics port 9464")
    check("requests" in c["resources"] and "limits" in c["resources"], f"{name}: resources")
    env = {e["name"]: e for e in c["env"]}
    check(env.get("HOSTNAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name", f"{name}: HOSTNAME from the pod name")
    errors.extend(secret_problems(name, pod, secret_keys))
    check(pod["securityContext"].get("runAsNonRoot") is True, f"{name}: runAsNonRoot")
check(by_kind[("Deployment", "nightly-refresh-producer")]["spec"]["replicas"] == 1, "producer: one replica")
check(by_kind[("Deployment", "nightly-refresh-producer")]["spec"]["template"]["spec"]["containers"][0]["args"] == ["producer", "schedule"], "producer: runs `producer schedule`")



# --- every pod can read the secrets it mounts ---------------------------------------------
def pod_specs(doc):
    """(name, pod spec) of every pod a manifest creates."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    name = f"{kind}/{doc.get('metadata', {}).get('name')}"
    if kind == "Pod":
        return [(name, spec)]
    if kind == "CronJob":
        return [(name, spec["jobTemplate"]["spec"]["template"]["spec"])]
    if "template" in spec and isinstance(spec["template"], dict) and "spec" in spec["template"]:
        return [(name, spec["template"]["spec"])]
    return []


def unreadable_secrets(name, pod):
    """Why a non-root container of `pod` cannot read a secret file it mounts (empty: it can).

    Kubelet writes secret files owned by root, with group fsGroup when the pod sets one, so
    a non-root process reads them only through the group bits (with fsGroup) or the other bits.
    """
    problems = []
    pod_ctx = pod.get("securityContext") or {}
    fs_group = pod_ctx.get("fsGroup")
    secret_modes = {}
    for vol in pod.get("volumes", []):
        sec = vol.get("secret")
        if sec is None:
            continue
        default = sec.get("defaultMode", 0o644)
        modes = [item.get("mode", default) for item in sec.get("items", [])] or [default]
        secret_modes[vol["name"]] = modes
    for vol in pod.get("volumes", []):
        proj = vol.get("projected")
        if proj is None:
            continue
        default = proj.get("defaultMode", 0o644)
        modes = []
        for source in proj.get("sources", []):
            if "secret" in source:
                items = source["secret"].get("items", [])
                modes += [item.get("mode", default) for item in items] or [default]
        if modes:
            secret_modes[vol["name"]] = modes
    for c in pod.get("initContainers", []) + pod.get("containers", []):
        ctx = {**pod_ctx, **(c.get("securityContext") or {})}
        user = ctx.get("runAsUser")
        if user == 0 or (user is None and not ctx.get("runAsNonRoot")):
            continue  # runs as root (or as the image's user, unknown here): root reads 0400
        for mount in c.get("volumeMounts", []):
            for mode in secret_modes.get(mount["name"], []):
                if mode & 0o004 or (fs_group is not None and mode & 0o040):
                    continue
                why = "no fsGroup" if fs_group is None else "mode lacks group-read"
                problems.append(
                    f"{name}: container {c['name']} runs as user {user} but cannot read secret "
                    f"volume {mount['name']!r} (mode {mode:04o}, {why}): set the pod's fsGroup "
                    f"and defaultMode 0440"
                )
    return problems


def self_test():
    """The rule above on known pods, so it cannot silently stop catching anything."""
    def pod(mode, fs_group=None, user=10001):
        ctx = {"runAsNonRoot": True, "runAsUser": user}
        if fs_group is not None:
            ctx["fsGroup"] = fs_group
        return {
            "securityContext": ctx,
            "containers": [{"name": "c", "volumeMounts": [{"name": "s", "mountPath": "/s"}]}],
            "volumes": [{"name": "s", "secret": {"secretName": "x", "defaultMode": mode}}],
        }
    assert unreadable_secrets("p", pod(0o400)), "0400 without fsGroup is unreadable"
    assert unreadable_secrets("p", pod(0o440)), "0440 without fsGroup is unreadable"
    assert unreadable_secrets("p", pod(0o400, fs_group=10001)), "0400 with fsGroup is unreadable"
    assert not unreadable_secrets("p", pod(0o440, fs_group=10001)), "0440 + fsGroup is readable"
    assert not unreadable_secrets("p", pod(0o444)), "other-read is readable"
    assert not unreadable_secrets("p", pod(0o400, user=0)), "root reads anything"
    projected = pod(0o440)
    projected["volumes"] = [{"name": "s", "projected": {"defaultMode": 0o440, "sources": [{"secret": {"name": "x"}}]}}]
    assert unreadable_secrets("p", projected), "projected 0440 without fsGroup is unreadable"


self_test()
for doc in docs:
    for name, pod in pod_specs(doc):
        errors.extend(unreadable_secrets(name, pod))

kustomization = yaml.safe_load((ROOT / "deploy/k8s/kustomization.yaml").read_text())
# --- the app image: pinned by digest in the manifests and the README's examples -------------
def container_images(pod):
    return [c.get("image", "") for c in pod.get("initContainers", []) + pod.get("containers", [])]


for doc in docs:
    for name, pod in pod_specs(doc):
        for ref in container_images(pod):
            why = image_problem(ref)
            check(why is None, f"k8s {name}: image {ref!r}: {why}")
            check("@sha256:" in str(ref), f"k8s {name}: image {ref!r} must be pinned by digest (<registry>/nightly-refresh@sha256:...)")
for entry in kustomization.get("images", []):
    check(re.fullmatch(r"sha256:[0-9a-f]{64}", str(entry.get("digest", ""))) is not None,
          f"k8s kustomization: images entry {entry.get('name')!r} must pin a digest (digest: sha256:...)")
    check("newTag" not in entry, f"k8s kustomization: images entry {entry.get('name')!r} sets a mutable newTag")
readme = (ROOT / "README.md").read_text()
readme_deploy = readme.split("## Deploying", 1)[-1].split("\n## Reliability", 1)[0]
check(re.search(r"image: \S+/nightly-refresh@sha256:", readme_deploy) and "digest: sha256:" in readme_deploy,
      "README Deploying: show the app image pinned by digest (image: and a kustomize digest)")
for m in re.finditer(r"(?:image:\s*|docker (?:run|pull)\s+(?:--?\S+\s+)*)([\w.\-/:@<>]*nightly-refresh[\w.\-/:@<>]*)", readme):
    # `<registry>` and `<digest>` are the README's placeholders for real values.
    why = image_problem(m.group(1).replace("<registry>", "registry").replace("<digest>", "0" * 64))
    check(why is None, f"README: image reference {m.group(1)!r}: {why}")


# --- the ops port: bound to the pod IP, reachable from Prometheus only --------------------
APP_PODS = {
    "nightly-refresh-worker": {"app.kubernetes.io/name": "nightly-refresh-worker"},
    "nightly-refresh-producer": {"app.kubernetes.io/name": "nightly-refresh-producer"},
}
REDIS_POD = {"app.kubernetes.io/name": "redis"}


def selects(selector, labels):
    """True when a label selector (matchLabels + matchExpressions) matches `labels`."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


manifests = {f.name for f in (ROOT / "deploy/k8s").glob("*.yaml")} - {"kustomization.yaml"}
check(set(kustomization["resources"]) == manifests,
      f"k8s kustomization: resources {sorted(kustomization['resources'])} must be exactly {sorted(manifests)}")
check_deploy_sh = (ROOT / "scripts/check-deploy").read_text()
for f in sorted(manifests):
    check(f"deploy/k8s/{f}" in check_deploy_sh, f"scripts/check-deploy: kubernetes-validate skips {f}")

check(cm.get("METRICS_ADDR", "").split(":")[0] not in ("0.0.0.0", "[::]"),
      "k8s ConfigMap: METRICS_ADDR binds every interface; the Deployments bind the pod IP")
for name in APP_PODS:
    c = by_kind[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0]
    env = [e["name"] for e in c["env"]]
    env_by_name = {e["name"]: e for e in c["env"]}
    pod_ip = env_by_name.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    check(pod_ip == "status.podIP", f"{name}: POD_IP from status.podIP")
    check(env_by_name.get("METRICS_ADDR", {}).get("value") == "$(POD_IP):9464",
          f"{name}: METRICS_ADDR must be $(POD_IP):9464 (the pod IP only)")
    check("POD_IP" in env and "METRICS_ADDR" in env and env.index("POD_IP") < env.index("METRICS_ADDR"),
          f"{name}: POD_IP must be defined before METRICS_ADDR refers to it")

policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]


def ingress_policies(labels):
    return [pol for pol in policies
            if selects(pol["spec"].get("podSelector"), labels)
            and "Ingress" in pol["spec"].get("policyTypes", ["Ingress"])]


for name, labels in APP_PODS.items():
    pols = ingress_policies(labels)
    check(pols, f"{name}: no NetworkPolicy restricts ingress to it")
    for pol in pols:
        for rule in pol["spec"].get("ingress", []):
            peers = rule.get("from") or []
            ports = [pt.get("port") for pt in rule.get("ports") or []]
            check(ports == [9464], f"NetworkPolicy {pol['metadata']['name']}: {name} admits ports {ports or 'all'}, only 9464")
            check(peers and all(set(peer) == {"namespaceSelector", "podSelector"}
                                and selects(peer["podSelector"], {"app.kubernetes.io/name": "prometheus"})
                                for peer in peers),
                  f"NetworkPolicy {pol['metadata']['name']}: {name}'s ops port must admit Prometheus pods only")
redis_pols = ingress_policies(REDIS_POD)
check(redis_pols, "k8s: no NetworkPolicy restricts ingress to Redis")
for pol in redis_pols:
    for rule in pol["spec"].get("ingress", []):
        peers = rule.get("from") or []
        check(peers and all(set(peer) == {"podSelector"}
                            and any(selects(peer["podSelector"], labels) for labels in APP_PODS.values())
                            and not selects(peer["podSelector"], {"app.kubernetes.io/name": "prometheus"})
                            for peer in peers),
              f"NetworkPolicy {pol['metadata']['name']}: Redis must admit the app pods only")

# --- the web console: a component, off unless an overlay includes it ----------------------
console_dir = ROOT / "deploy/k8s/console"
console_kust = yaml.safe_load((console_dir / "kustomization.yaml").read_text())
check(console_kust.get("kind") == "Component" and console_kust.get("resources") == ["console.yaml"],
      "k8s console: deploy/k8s/console is a Component holding console.yaml")
check("console" not in " ".join(kustomization.get("components") or []),
      "k8s kustomization: the base must not include the console component (off by default)")
console_docs = [d for d in yaml.safe_load_all((console_dir / "console.yaml").read_text()) if d]
console_by_kind = {(d["kind"], d["metadata"]["name"]): d for d in console_docs}
console_known = dict(secret_keys)
for d in console_docs:
    if d.get("kind") == "Secret":
        console_known[d["metadata"]["name"]] = set(d.get("stringData") or {}) | set(d.get("data") or {})
SECRET_ALLOW["nightly-refresh-console"] = {"REDIS_URL", "users"}
SECRET_REQUIRED["nightly-refresh-console"] = {"REDIS_URL", "users"}
console_dep = console_by_kind.get(("Deployment", "nightly-refresh-console"))
check(console_dep is not None, "k8s console: Deployment nightly-refresh-console")
if console_dep is not None:
    pod = console_dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    check(c["args"][:2] == ["producer", "console"], "k8s console: runs `producer console`")
    check("--base-path" in c["args"], "k8s console: serves under a --base-path behind the ingress")
    listen = c["args"][c["args"].index("--listen") + 1] if "--listen" in c["args"] else ""
    check(listen == "$(POD_IP):8088", f"k8s console: --listen must be $(POD_IP):8088, got {listen!r}")
    check("--insecure-cookies" not in c["args"], "k8s console: Secure cookies (no --insecure-cookies) behind TLS")
    check(c["readinessProbe"]["httpGet"]["path"].endswith("/healthz"), "k8s console: readiness on /healthz")
    check(env.get("CONSOLE_USERS_FILE", {}).get("value") == "/var/run/secrets/nightly-refresh/users",
          "k8s console: CONSOLE_USERS_FILE points at the mounted users Secret")
    check(pod["securityContext"].get("runAsNonRoot") is True, "k8s console: runAsNonRoot")
    errors.extend(secret_problems("nightly-refresh-console", pod, console_known))
    errors.extend(unreadable_secrets("nightly-refresh-console", pod))
    for ref in container_images(pod):
        check("@sha256:" in str(ref) and image_problem(ref) is None, f"k8s console: image {ref!r} must be pinned by digest")
ingress = console_by_kind.get(("Ingress", "nightly-refresh-console"), {})
check(bool(ingress.get("spec", {}).get("tls")), "k8s console: the Ingress terminates TLS (spec.tls)")
console_pols = [d for d in console_docs if d.get("kind") == "NetworkPolicy"
                and selects(d["spec"].get("podSelector"), {"app.kubernetes.io/name": "nightly-refresh-console"})]
check(console_pols and all(rule.get("from") for pol in console_pols for rule in pol["spec"].get("ingress", [])),
      "k8s console: a NetworkPolicy admits only named peers (the ingress controller) to the console")

if errors:
    print("check_deploy: FAILED", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("check_deploy: ok")
