"""Dashboard pages at scale: the runs list over 10,000 runs and the comparison of 200 runs, as a user waits for them.

    python benchmarks/dashboard_render.py                   # 10,000 runs + 200 with metrics, 30 requests per page
    python benchmarks/dashboard_render.py --quick           # 2,000 runs + 50 with metrics, 10 requests per page
    python benchmarks/dashboard_render.py --json            # the figures as JSON on stdout (the table on stderr)
    python benchmarks/dashboard_render.py --mlflow /venv/bin/mlflow   # the peer, installed somewhere else

A fresh `flowdeck up --port 0` starts in a temporary home whose store holds, bulk-inserted, N runs
(default 10,000) in five experiments with realistic runtime arguments, mixed states and two tasks
each, plus 200 runs of a sweep whose `train` and `evaluate` tasks each wrote a `system.Metrics`
artifact (seven metrics in all). Timed over HTTP with a persistent connection, after a warm-up, is
what a browser waits for before it can draw: the full HTML answer of

- `GET /runs` (first page, 50 runs), a filtered page (name search + state), the second page (its
  "Older" link) and an experiment's runs;
- `GET /compare?runs=<200 ids>`: parameters and metrics of the 200 sweep runs with their charts' data.

Each page's p50/p95 over the requests is checked against 1 s (PASS/FAIL), and the answers are
checked (50 rows; 200 columns and every metric row).

The issue's peers: KFP's UI cannot run here (it needs the KFP API server on Kubernetes). MLflow's
can: when `mlflow` is importable (or `--mlflow` names its command), `mlflow server` starts on a
SQLite store holding the same runs (logged through its REST API: runs/create and runs/log-batch
with the same parameters, and the metrics of the 200 sweep runs), and the requests its UI sends
are timed: the runs table (`POST /ajax-api/2.0/mlflow/runs/search`, max_results 50, newest first,
unfiltered and filtered by name and status) and, for its compare view of 200 runs, one
`GET /ajax-api/2.0/mlflow/runs/get` per run, six at a time as a browser does. MLflow answers JSON
that its UI then renders in the browser, so its figures are a lower bound of what its user waits for.
mlflow is never a requirement of flowdeck; without it the peer is skipped with a line saying how to
install it.
"""

# No `from __future__ import annotations`: control_plane_load defines kfp components.
import argparse
import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import yaml
from control_plane_load import Server, _percentiles, tiny
from kfp import compiler
from reporting import describe_environment, emit, finish, progress, table

TARGET_MS = 1000.0
OPTIMIZERS = ("adam", "sgd", "adamw", "rmsprop")
DATASETS = ("s3://data/churn/2026-03", "s3://data/churn/2026-04", "s3://data/churn/2026-05")
STATES = ["SUCCEEDED"] * 80 + ["FAILED"] * 12 + ["CANCELED"] * 5 + ["RUNNING"] * 3
#: The sweep's tasks and the metrics each logs; "accuracy" in both, so the comparison names it by task.
METRICS = {"train": ("loss", "accuracy"), "evaluate": ("accuracy", "f1", "auc", "precision", "recall")}
#: Concurrent requests per host a browser makes (HTTP/1.1).
BROWSER_CONNECTIONS = 6


# ------------------------------------------------------------------------------------------- data
def _arguments(rng: random.Random, index: int) -> dict[str, Any]:
    return {"learning_rate": round(10 ** rng.uniform(-4, -1), 6), "batch_size": rng.choice((32, 64, 128, 256)),
            "epochs": rng.randrange(5, 60), "optimizer": rng.choice(OPTIMIZERS), "dataset": rng.choice(DATASETS),
            "seed": index}


def _metrics(rng: random.Random) -> dict[str, dict[str, float]]:
    quality = rng.uniform(0.6, 0.95)
    return {"train": {"loss": round(1 - quality + rng.uniform(-.05, .05), 4), "accuracy": round(quality + .03, 4)},
            "evaluate": {name: round(min(quality + rng.uniform(-.06, .04), 1.0), 4)
                         for name in ("accuracy", "f1", "auc", "precision", "recall")}}


def make_runs(count: int, sweep: int, experiments: list[str], sweep_experiment: str) -> list[dict[str, Any]]:
    """What both stores receive: `count` runs, then `sweep` runs with metrics (name, state, times, arguments)."""
    rng = random.Random(11)
    now = datetime.now(timezone.utc)
    runs = []
    for index in range(count + sweep):
        in_sweep = index >= count
        created = now - timedelta(seconds=rng.uniform(0, 30 * 86400) if not in_sweep else (count + sweep - index) * 60)
        state = "SUCCEEDED" if in_sweep else rng.choice(STATES)
        runs.append({"id": uuid.uuid4().hex, "name": f"sweep {index - count}" if in_sweep else f"nightly {index}",
                     "state": state, "created": created,
                     "finished": None if state == "RUNNING" else created + timedelta(seconds=rng.uniform(5, 900)),
                     "arguments": _arguments(rng, index),
                     "experiment": sweep_experiment if in_sweep else experiments[index % len(experiments)],
                     "metrics": _metrics(rng) if in_sweep else None})
    return runs


def fill_flowdeck(database_url: str, runs: list[dict[str, Any]], spec: dict[str, Any]) -> float:
    """Bulk-insert the runs, two tasks each, and the sweep's Metrics artifacts with their OUTPUT events."""
    from sqlalchemy import insert

    from flowdeck.store import RunRow, TaskRow, open_store
    from flowdeck.store.models import ArtifactRow, EventRow

    store = open_store(database_url)
    host, pid = socket.gethostname(), os.getpid()
    started = time.perf_counter()
    try:
        for offset in range(0, len(runs), 1000):
            run_rows, task_rows, artifacts, events = [], [], [], []
            for run in runs[offset:offset + 1000]:
                run_rows.append({
                    "id": run["id"], "pipeline_name": "train-and-evaluate", "display_name": run["name"],
                    "state": run["state"], "pipeline_spec": spec, "arguments": run["arguments"], "outputs": {},
                    "error": "task train failed: exit code 1" if run["state"] == "FAILED" else None,
                    # RUNNING ones name this (live) process, so nothing takes them for orphans.
                    "engine_host": host, "engine_pid": pid, "created_at": run["created"],
                    "started_at": run["created"], "finished_at": run["finished"], "namespace": "",
                    "experiment_id": run["experiment"], "storage_state": "AVAILABLE", "origin": "server"})
                for task in METRICS:
                    task_id = uuid.uuid4().hex
                    task_rows.append({
                        "id": task_id, "run_id": run["id"], "parent_id": None, "name": task, "display_name": task,
                        "path": task, "kind": "container", "state": run["state"], "attempts": 1,
                        "inputs": {"parameters": run["arguments"]}, "outputs": {}, "created_at": run["created"],
                        "started_at": run["created"], "finished_at": run["finished"]})
                    if run["metrics"]:
                        artifact_id = uuid.uuid4().hex
                        artifacts.append({"id": artifact_id, "run_id": run["id"], "name": "metrics",
                                          "uri": f"file:///artifacts/{run['id']}/{task}/metrics",
                                          "schema_title": "system.Metrics", "schema_version": "0.0.1",
                                          "metadata": run["metrics"][task], "created_at": run["created"]})
                        events.append({"task_id": task_id, "artifact_id": artifact_id, "type": "OUTPUT",
                                       "key": "metrics", "position": 0})
            with store.engine.begin() as conn:
                conn.execute(insert(RunRow), run_rows)
                conn.execute(insert(TaskRow), task_rows)
                if artifacts:
                    conn.execute(insert(ArtifactRow), artifacts)
                    conn.execute(insert(EventRow), events)
    finally:
        store.close()
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------ timing
def timed(send: Any, calls: int, check: Any) -> dict[str, Any]:
    """p50/p95/... of `calls` calls of `send()` (after a warm-up), and whether `check(answer)` held for the last."""
    for _ in range(3):
        send()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        answer = send()
        samples.append((time.perf_counter() - started) * 1000)
    return {"calls": calls, **_percentiles(samples), "correct": bool(check(answer))}


def _rows(page: httpx.Response) -> int:
    page.raise_for_status()
    return page.text.count('<tr id="run-')


def _older(page: httpx.Response) -> str:
    marker = 'rel="next"'
    head = page.text[:page.text.index(marker)]
    return head[head.rindex('href="') + 6:].split('"', 1)[0].replace("&amp;", "&")


def time_flowdeck(url: str, runs: list[dict[str, Any]], sweep_ids: list[str], experiment: str,
                  calls: int) -> list[dict[str, Any]]:
    results = []
    with httpx.Client(base_url=url, timeout=60, headers={"Accept": "text/html"}) as http:
        second = _older(http.get("/runs"))
        failed_named = sum(1 for run in runs if run["state"] == "FAILED" and "nightly 1" in run["name"])
        cases = [
            ("GET /runs (first page, 50)", "/runs", lambda page: _rows(page) == 50),
            ("GET /runs?q=nightly 1&state=FAILED", "/runs?q=nightly%201&state=FAILED",
             lambda page: _rows(page) == min(50, failed_named)),
            ("GET /runs, 2nd page (Older link)", second, lambda page: _rows(page) == 50),
            ("GET /runs?experiment=<one of 5>", f"/runs?experiment={experiment}", lambda page: _rows(page) == 50),
            (f"GET /compare?runs=<{len(sweep_ids)} ids>", "/compare?runs=" + ",".join(sweep_ids),
             lambda page: page.status_code == 200 and page.text.count('<th scope="col" class="run-head">')
             == len(sweep_ids) and page.text.count('data-metric="') == 7),
        ]
        for name, path, check in cases:
            result = {"case": name, **timed(lambda path=path: http.get(path), calls, check),
                      "bytes": len(http.get(path).content)}
            results.append(result)
            progress(f"    {name:<40} p50 {result['p50']:8.1f} ms  p95 {result['p95']:8.1f} ms  "
                      f"{'ok' if result['correct'] else 'WRONG ANSWER'}")
    return results


# ------------------------------------------------------------------------------------------ MLflow
def mlflow_command(explicit: str | None) -> list[str] | None:
    if explicit:
        return [explicit]
    if importlib.util.find_spec("mlflow") is not None:
        return [sys.executable, "-m", "mlflow"]
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """`mlflow server` on a SQLite store in `home`, one worker."""

    def __init__(self, command: list[str], home: Path) -> None:
        self.command, self.home = command, home
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "mlflow.log", "wb")  # noqa: SIM115 - the server writes it while it runs
        self.process = subprocess.Popen(
            [*self.command, "server", "--backend-store-uri", f"sqlite:///{self.home / 'mlflow.db'}",
             "--default-artifact-root", str(self.home / "artifacts"), "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise RuntimeError("mlflow server did not start:\n" + (self.home / "mlflow.log").read_text()[-3000:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def fill_mlflow(url: str, runs: list[dict[str, Any]], experiment_names: dict[str, str]) -> tuple[float, dict]:
    """Log the runs through MLflow's REST API (8 clients at once); returns (seconds, {flowdeck id: mlflow id})."""
    api = f"{url}/api/2.0/mlflow"
    ids: dict[str, str] = {}
    with httpx.Client(timeout=60) as http:
        experiments = {key: http.post(f"{api}/experiments/create", json={"name": name}).json()["experiment_id"]
                       for key, name in experiment_names.items()}

    def log(chunk: list[dict[str, Any]]) -> dict[str, str]:
        made = {}
        with httpx.Client(timeout=60) as http:
            for run in chunk:
                start = int(run["created"].timestamp() * 1000)
                created = http.post(f"{api}/runs/create", json={
                    "experiment_id": experiments[run["experiment"]], "run_name": run["name"], "start_time": start})
                created.raise_for_status()
                run_id = created.json()["run"]["info"]["run_id"]
                metrics = [{"key": f"{task}.{name}", "value": value, "timestamp": start, "step": 0}
                           for task, values in (run["metrics"] or {}).items() for name, value in values.items()]
                http.post(f"{api}/runs/log-batch", json={
                    "run_id": run_id, "metrics": metrics,
                    "params": [{"key": k, "value": str(v)} for k, v in run["arguments"].items()]}).raise_for_status()
                if run["state"] != "RUNNING":
                    status = {"SUCCEEDED": "FINISHED", "CANCELED": "KILLED"}.get(run["state"], run["state"])
                    http.post(f"{api}/runs/update", json={
                        "run_id": run_id, "status": status,
                        "end_time": int(run["finished"].timestamp() * 1000)}).raise_for_status()
                made[run["id"]] = run_id
        return made

    started = time.perf_counter()
    chunks = [runs[i::8] for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        for made in pool.map(log, chunks):
            ids.update(made)
    return time.perf_counter() - started, {"experiments": experiments, "runs": ids}


def time_mlflow(url: str, logged: dict[str, Any], runs: list[dict[str, Any]], sweep_ids: list[str],
                calls: int) -> list[dict[str, Any]]:
    search = f"{url}/ajax-api/2.0/mlflow/runs/search"
    every = list(logged["experiments"].values())
    base = {"experiment_ids": every, "max_results": 50, "order_by": ["attributes.start_time DESC"],
            "run_view_type": "ACTIVE_ONLY"}
    failed_named = sum(1 for run in runs if run["state"] == "FAILED" and "nightly 1" in run["name"])
    mlflow_ids = [logged["runs"][run_id] for run_id in sweep_ids]
    results = []
    with httpx.Client(timeout=120) as http:
        first = http.post(search, json=base).json()
        cases = [
            ("runs/search (first page, 50)", base, lambda body: len(body.get("runs", [])) == 50),
            ("runs/search name LIKE + status=FAILED",
             {**base, "filter": "attributes.run_name LIKE '%nightly 1%' AND attributes.status = 'FAILED'"},
             lambda body: len(body.get("runs", [])) == min(50, failed_named)),
            ("runs/search, 2nd page (page_token)", {**base, "page_token": first.get("next_page_token")},
             lambda body: len(body.get("runs", [])) == 50),
        ]
        for name, body, check in cases:
            result = {"case": name, **timed(lambda body=body: http.post(search, json=body).json(), calls, check)}
            results.append(result)
            progress(f"    {name:<40} p50 {result['p50']:8.1f} ms  p95 {result['p95']:8.1f} ms")

    limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS, max_keepalive_connections=BROWSER_CONNECTIONS)
    with httpx.Client(timeout=120, limits=limits) as browser, ThreadPoolExecutor(BROWSER_CONNECTIONS) as pool:
        def get(run_id: str) -> dict[str, Any]:
            return browser.get(f"{url}/ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()

        result = {"case": f"{len(mlflow_ids)} x runs/get ({BROWSER_CONNECTIONS} at a time)",
                  **timed(lambda: list(pool.map(get, mlflow_ids)), max(3, calls // 3),
                          lambda bodies: all(len(b["run"]["data"].get("metrics", [])) == 7 for b in bodies))}
    results.append(result)
    progress(f"    {result['case']:<40} p50 {result['p50']:8.1f} ms  p95 {result['p95']:8.1f} ms")
    return results


# ------------------------------------------------------------------------------------------ driver
def report(figures: dict[str, Any]) -> str:
    env = figures["environment"]
    lines = ["", f"flowdeck {env['flowdeck']} ({env['flowdeck_commit']}) dashboard pages; Python {env['python']}, "
                 f"{env['cpus']} CPUs; load average before {figures['load_before']}, after {figures['load_after']}",
             f"store: {figures['stored']:,} runs + {figures['sweep']} sweep runs with metrics, SQLite "
             f"(bulk insert {figures['insert_s']:.1f} s); HTTP time of the whole HTML answer, persistent connection",
             ""]
    rows: list[tuple[str, ...]] = [("page", "calls", "p50", "p95", "max", "KiB", f"p95 < {TARGET_MS:.0f} ms")]
    verdicts = []
    for case in figures["flowdeck"]:
        ok = case["p95"] < TARGET_MS and case["correct"]
        verdicts.append(ok)
        rows.append((case["case"], str(case["calls"]), f"{case['p50']:.1f} ms", f"{case['p95']:.1f} ms",
                     f"{case['max']:.1f} ms", f"{case['bytes'] / 1024:.0f}",
                     ("PASS" if ok else "FAIL") + ("" if case["correct"] else " (wrong answer)")))
    lines += table(rows)
    peer = figures.get("mlflow")
    lines.append("")
    if peer is None:
        lines.append("Peer skipped: MLflow is not installed. To time it, install it outside flowdeck's environment "
                     "(python -m venv /tmp/mlflow && /tmp/mlflow/bin/pip install mlflow) and pass "
                     "--mlflow /tmp/mlflow/bin/mlflow. KFP's UI cannot run here (it needs Kubernetes).")
    else:
        lines.append(f"Peer: MLflow {peer['version']} server (SQLite, 1 worker), the same runs logged through its REST "
                     f"API in {peer['fill_s']:.0f} s; JSON answers (its UI renders them in the browser afterwards)")
        rows = [("request", "calls", "p50", "p95", "max")]
        for case in peer["cases"]:
            rows.append((case["case"], str(case["calls"]), f"{case['p50']:.1f} ms", f"{case['p95']:.1f} ms",
                         f"{case['max']:.1f} ms"))
        lines += table(rows)
        ours = {case["case"]: case for case in figures["flowdeck"]}
        pairs = [("runs list, first page", "GET /runs (first page, 50)", "runs/search (first page, 50)"),
                 ("runs list, filtered", "GET /runs?q=nightly 1&state=FAILED", "runs/search name LIKE + status=FAILED"),
                 ("runs list, 2nd page", "GET /runs, 2nd page (Older link)", "runs/search, 2nd page (page_token)"),
                 (f"compare {figures['sweep']} runs", f"GET /compare?runs=<{figures['sweep']} ids>",
                  peer["cases"][-1]["case"])]
        lines.append("")
        theirs = {case["case"]: case for case in peer["cases"]}
        for label, mine, other in pairs:
            lines.append(f"  {label:<24} MLflow p50 / flowdeck p50 = {theirs[other]['p50'] / ours[mine]['p50']:.1f}x")
        if not all(case["correct"] for case in peer["cases"]):
            lines.append("  (some MLflow answers were not what was asked for: see the JSON figures)")
    lines.append("")
    lines.append(f"Overall: {'PASS' if all(verdicts) else 'FAIL'} (every page p95 < {TARGET_MS:.0f} ms with the right "
                 f"answer); total benchmark time {figures['total_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the dashboard's runs list and run comparison at scale.")
    parser.add_argument("--runs", type=int, help="runs in the store besides the sweep (default 10000)")
    parser.add_argument("--sweep", type=int, help="runs with metrics, all compared at once (default 200)")
    parser.add_argument("--calls", type=int, help="requests per page (default 30)")
    parser.add_argument("--mlflow", help="the `mlflow` command to time as the peer (default: this Python's, if any)")
    parser.add_argument("--skip-mlflow", action="store_true", help="no peer")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 runs, 50 in the sweep, 10 requests")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (table to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (homes, server logs)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (2000 if args.quick else 10000)
    args.sweep = args.sweep or (50 if args.quick else 200)
    args.calls = args.calls or (10 if args.quick else 30)

    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-dashboard-"))
    package = workdir / "pipeline.yaml"
    compiler.Compiler().compile(tiny, str(package))
    spec = yaml.safe_load(package.read_text())
    figures: dict[str, Any] = {"environment": describe_environment("kfp"), "stored": args.runs, "sweep": args.sweep,
                               "load_before": [round(v, 2) for v in os.getloadavg()]}
    started = time.perf_counter()
    server = Server(workdir / "home", f"sqlite:///{workdir / 'home' / 'flowdeck.db'}")
    try:
        server.start()
        from flowdeck.store import open_store
        from flowdeck.store.catalog import Experiments

        store = open_store(server.database_url)
        names = {Experiments(store).create(display_name=f"nightly-{i}").id: f"nightly-{i}" for i in range(5)}
        sweep_experiment = Experiments(store).create(display_name="sweep").id
        store.close()
        names[sweep_experiment] = "sweep"
        runs = make_runs(args.runs, args.sweep, list(names)[:5], sweep_experiment)
        sweep_ids = [run["id"] for run in runs[args.runs:]]
        progress(f"inserting {len(runs):,} runs into flowdeck's store")
        figures["insert_s"] = round(fill_flowdeck(server.database_url, runs, spec), 2)
        progress(f"timing flowdeck's pages at {server.url}, {args.calls} requests each")
        figures["flowdeck"] = time_flowdeck(server.url, runs, sweep_ids, next(iter(names)), args.calls)
    finally:
        server.stop()
    command = None if args.skip_mlflow else mlflow_command(args.mlflow)
    if command is not None:
        version = subprocess.run([*command, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]
        peer = MlflowServer(command, workdir / "mlflow")
        progress(f"starting mlflow server {version}")
        try:
            peer.start()
            progress(f"logging {len(runs):,} runs through MLflow's REST API (8 clients)")
            fill_s, logged = fill_mlflow(peer.url, runs, names)
            progress(f"  logged in {fill_s:.0f} s; timing MLflow's requests")
            figures["mlflow"] = {"version": version, "fill_s": round(fill_s, 1),
                                 "cases": time_mlflow(peer.url, logged, runs, sweep_ids, args.calls)}
        finally:
            peer.stop()
    finish(figures, started, workdir, args.keep)
    emit(report(figures), figures, args.json)
    return 0 if all(case["p95"] < TARGET_MS and case["correct"] for case in figures["flowdeck"]) else 1


if __name__ == "__main__":
    sys.exit(main())
