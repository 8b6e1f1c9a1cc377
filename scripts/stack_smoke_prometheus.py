"""Checks scripts/stack-smoke makes against the compose stack's Prometheus, over its HTTP
API from inside its container (`podman exec ... wget`), so nothing but the stack's own
network is involved:

  workers-up N    every worker target is up (up == 1), there are exactly N of them (DNS
                  service discovery follows scaling), and the producer target is up
  queries         every dashboard query returns data; every alert rule of
                  prometheus/rules.yml is loaded, evaluates healthy, and its expression
                  evaluates, and every metric it reads has series

Each retries until --timeout (targets are discovered every 15 s, rate() needs two scrapes),
then prints what is still wrong and exits 1.

  python3 scripts/stack_smoke_prometheus.py CONTAINER workers-up 3 [--timeout 120]
  python3 scripts/stack_smoke_prometheus.py CONTAINER queries [--timeout 120]
"""

import argparse
import json
import re
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_JOB = "nightly-refresh-worker"
PRODUCER_JOB = "nightly-refresh-producer"
# Grafana variables in the dashboard, replaced as in worker/tests/it/observability.rs.
GRAFANA_VARIABLES = {
    "${__rate_interval}": "1m",
    "$__rate_interval": "1m",
    "${__range}": "5m",
    "$__range": "5m",
}


class Prometheus:
    def __init__(self, container):
        self.container = container

    def get(self, path, **params):
        url = "http://127.0.0.1:9090" + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        out = subprocess.run(
            ["podman", "exec", self.container, "wget", "-q", "-O", "-", url],
            capture_output=True, text=True, timeout=30,
        )
        if out.returncode != 0:
            return {"status": "error", "error": f"wget exit {out.returncode}: {out.stderr.strip()}"}
        return json.loads(out.stdout)

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)


def workers_up(prom, expected):
    """What is wrong with the scrape targets (empty: nothing)."""
    answer = prom.get("/api/v1/targets", state="active")
    if answer.get("status") != "success":
        return [f"targets: {answer}"]
    targets = answer["data"]["activeTargets"]
    workers = [t for t in targets if t["labels"].get("job") == WORKER_JOB]
    producers = [t for t in targets if t["labels"].get("job") == PRODUCER_JOB]
    problems = []
    if len(workers) != expected:
        problems.append(f"{len(workers)} worker targets, expected {expected}: "
                        + ", ".join(t["labels"]["instance"] for t in workers))
    problems += [f"worker {t['labels']['instance']} is {t['health']}: {t.get('lastError', '')}"
                 for t in workers if t["health"] != "up"]
    if not producers or any(t["health"] != "up" for t in producers):
        problems.append(f"producer target not up: {producers}")
    # The same through PromQL: the expression the NoWorkersAlive alert relies on.
    up = prom.query(f'count(up{{job="{WORKER_JOB}"}} == 1)')
    result = up.get("data", {}).get("result", [])
    count = int(float(result[0]["value"][1])) if result else 0
    if count != expected:
        problems.append(f'count(up{{job="{WORKER_JOB}"}} == 1) is {count}, expected {expected}')
    return problems


def dashboard_exprs():
    dashboard = json.loads((ROOT / "grafana/dashboards/nightly-refresh.json").read_text())
    out = []

    def walk(node, title):
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("expr"), str):
                expr = node["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                out.append((title, expr))
            for value in node.values():
                walk(value, title)
        elif isinstance(node, list):
            for value in node:
                walk(value, title)

    walk(dashboard, "?")
    return out


def metric_names(expr):
    """The metric names a PromQL expression reads (label names and values removed)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return sorted(n for n in names if n.startswith("nightly_refresh_") or n == "up")


def queries(prom):
    """What is wrong with the dashboard's and the alert rules' queries (empty: nothing)."""
    problems = []
    for title, expr in dashboard_exprs():
        if "$" in expr:
            problems.append(f"dashboard {title}: a variable this check does not replace: {expr}")
            continue
        answer = prom.query(expr)
        if answer.get("status") != "success":
            problems.append(f"dashboard {title}: {expr}: {answer}")
        elif not answer["data"]["result"]:
            problems.append(f"dashboard {title}: {expr}: no data")

    declared = sum(1 for line in (ROOT / "prometheus/rules.yml").read_text().splitlines()
                   if line.strip().startswith("expr:"))
    answer = prom.get("/api/v1/rules")
    rules = [r for g in answer.get("data", {}).get("groups", []) for r in g["rules"]]
    if len(rules) != declared:
        problems.append(f"Prometheus loaded {len(rules)} of the {declared} rules of rules.yml")
    series = {}
    for rule in rules:
        name, expr = rule["name"], rule["query"]
        if rule.get("health") != "ok":
            problems.append(f"rule {name}: health {rule.get('health')}: {rule.get('lastError')}")
        answer = prom.query(expr)
        if answer.get("status") != "success":
            problems.append(f"rule {name}: {expr}: {answer}")
        for metric in metric_names(expr):
            if metric not in series:
                found = prom.query(f"count({metric})").get("data", {}).get("result", [])
                series[metric] = bool(found)
            if not series[metric]:
                problems.append(f"rule {name}: no series of {metric}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("container")
    parser.add_argument("check", choices=["workers-up", "queries"])
    parser.add_argument("workers", nargs="?", type=int)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    if args.check == "workers-up" and args.workers is None:
        parser.error("workers-up needs the number of workers expected")
    prom = Prometheus(args.container)
    deadline = time.monotonic() + args.timeout
    while True:
        if args.check == "workers-up":
            problems = workers_up(prom, args.workers)
        else:
            problems = queries(prom)
        if not problems:
            if args.check == "workers-up":
                print(f"prometheus: {args.workers} worker targets up (up == 1) and the producer's")
            else:
                print(f"prometheus: {len(dashboard_exprs())} dashboard queries return data; "
                      "every alert rule loaded, healthy, evaluating, with series for what it reads")
            return 0
        if time.monotonic() > deadline:
            print("prometheus: " + args.check + " still failing after "
                  f"{args.timeout:.0f}s:", *problems, sep="\n  ", file=sys.stderr)
            return 1
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
