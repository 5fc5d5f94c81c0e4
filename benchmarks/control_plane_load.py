"""Load on the control plane: `flowdeck up` driven by the real kfp.Client, on SQLite and PostgreSQL.

    python benchmarks/control_plane_load.py                      # SQLite (+ PostgreSQL if FLOWDECK_TEST_POSTGRES_URL)
    python benchmarks/control_plane_load.py --database-url postgresql+psycopg://u:p@host/db
    python benchmarks/control_plane_load.py --quick              # smoke run, about a minute
    python benchmarks/control_plane_load.py --json               # the figures as JSON on stdout

For each backend a fresh `flowdeck up --port 0` starts in a temporary home (on PostgreSQL: in a new
database created on that server and dropped afterwards), then:

1. Concurrent submissions: N threads (default 50) call `kfp.Client.run_pipeline` at once with a small
   compiled pipeline (two chained tasks, caching off), and the script waits until every run is
   finished. Reported: the wall time until all are finished, the latency of the create calls, and
   that every run SUCCEEDED.
2. Listing: 10,000 realistic runs (five experiments, mixed states, timestamps over 30 days, two tasks
   each, the compiled spec) are bulk-inserted straight into the store, then `GET /apis/v2beta1/runs`
   (what kfp.Client.list_runs sends) is timed over HTTP with a persistent connection: page_size 10
   and 100, sorted by created_at desc, with no filter, an experiment filter, a state filter, and the
   second page through the page token. p50/p95/p99 of 200+ calls each, PASS/FAIL against the 100 ms
   p95 target. One row times kfp.Client.list_runs itself, which adds the client's deserialisation.

The peer cannot run here: the KFP API server needs Kubernetes, MySQL and Argo Workflows. kfp.local
has no API server, no concurrency and no run store, so the only comparable figure is the cost of the
same N runs through kfp.local (`SubprocessRunner(use_venv=False)`) one after another, printed as the
reference point for scenario 1. Listing has no kfp.local counterpart; its target is absolute.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as real types.
import argparse
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from kfp import compiler, dsl
from reporting import describe_environment, emit, finish, progress, table

IMAGE = "python:3.11"  # explicit, to silence kfp's FutureWarning
TARGET_P95_MS = 100.0
FINISHED = {"SUCCEEDED", "FAILED", "CANCELED", "SKIPPED"}
API = "/apis/v2beta1"


# ------------------------------------------------------------------------------------------ pipeline
@dsl.component(base_image=IMAGE)
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="load-tiny")
def tiny(a: int = 1, b: int = 2) -> int:
    return add(a=add(a=a, b=b).output, b=1).output




# ------------------------------------------------------------------------------------------- server
class Server:
    """`flowdeck up --port 0` in a subprocess with its own home and database."""

    def __init__(self, home: Path, database_url: str) -> None:
        self.home = home
        self.database_url = database_url
        self.log = home / "server.log"
        self.url = ""
        self.ready_s = 0.0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("FLOWDECK_URL", "FLOWDECK_TOKEN")}
        env.update(FLOWDECK_HOME=str(self.home), FLOWDECK_DATABASE_URL=self.database_url, PYTHONUNBUFFERED="1")
        command = [sys.executable, "-c", "import sys; from flowdeck.cli.main import main; sys.exit(main())",
                   "up", "--port", "0"]
        started = time.perf_counter()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            text = self.log.read_text(errors="replace")
            if "flowdeck is up at " in text:
                self.url = text.split("flowdeck is up at ", 1)[1].split()[0]
                self.ready_s = time.perf_counter() - started
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"flowdeck up exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"flowdeck up did not announce its URL within {timeout:.0f} s:\n{text[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A new database on the PostgreSQL server at `server_url`, dropped afterwards."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"flowdeck_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
        admin.dispose()


# ------------------------------------------------------------------------------ 1: concurrent runs
def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    if len(samples_ms) < 2:
        value = samples_ms[0] if samples_ms else float("nan")
        return {"p50": value, "p95": value, "p99": value, "max": value}
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": round(cuts[49], 2), "p95": round(cuts[94], 2), "p99": round(cuts[98], 2),
            "max": round(max(samples_ms), 2)}


def concurrent_runs(url: str, package: Path, count: int, timeout: float) -> dict[str, Any]:
    import kfp

    client = kfp.Client(host=url, namespace="")
    experiment = client.create_experiment(name=f"load-{uuid.uuid4().hex[:6]}")
    barrier = threading.Barrier(count)
    latencies: list[float] = []
    run_ids: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def submit(index: int) -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            run = client.run_pipeline(experiment_id=experiment.experiment_id, job_name=f"load-{index}",
                                      pipeline_package_path=str(package), params={"a": index, "b": 2},
                                      enable_caching=False)
        except Exception as exc:  # reported, not raised: the figure is how many of the calls succeed
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            return
        with lock:
            latencies.append((time.perf_counter() - started) * 1000)
            run_ids.append(run.run_id)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()  # the barrier releases every thread at about this moment
    for thread in threads:
        thread.join()
    submitted_s = time.perf_counter() - started

    states: dict[str, str] = {}
    with httpx.Client(base_url=url, timeout=30) as http:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            page = http.get(f"{API}/runs", params={"experiment_id": experiment.experiment_id, "page_size": 200})
            page.raise_for_status()
            states = {run["run_id"]: run.get("state", "") for run in page.json().get("runs", [])}
            if len(states) >= len(run_ids) and all(state in FINISHED for state in states.values()):
                break
            time.sleep(0.1)
        all_done_s = time.perf_counter() - started
        outputs_ok = 0
        for run_id in run_ids[:5]:  # spot-check results: a + 2 + 1
            detail = http.get(f"{API}/runs/{run_id}").json()
            outputs_ok += detail.get("state") == "SUCCEEDED"
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return {
        "runs": count, "created": len(run_ids), "create_errors": errors[:5], "create_error_count": len(errors),
        "submit_wall_s": round(submitted_s, 3), "create_latency_ms": _percentiles(latencies),
        "all_finished_wall_s": round(all_done_s, 3), "states": counts,
        "all_succeeded": counts.get("SUCCEEDED", 0) == count and not errors,
        "spot_checked_succeeded": outputs_ok,
    }


def kfp_local_sequential(count: int, workdir: Path) -> dict[str, Any]:
    """The same pipeline through kfp.local, `count` runs one after another, in a subprocess."""
    script = (
        "import json, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from kfp import local\n"
        "from control_plane_load import tiny\n"
        f"local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root={str(workdir / 'kfp-root')!r})\n"
        "started = time.perf_counter(); ok = 0\n"
        f"for i in range({count}):\n"
        "    ok += tiny(a=i, b=2).output == i + 3\n"
        "print(json.dumps({'wall_s': time.perf_counter() - started, 'succeeded': ok}))\n"
    )
    log = workdir / "kfp-local.log"
    with open(log, "wb") as handle:
        completed = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=handle,
                                   check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"kfp.local failed ({completed.returncode}); see {log}")
    figures = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    return {"runs": count, "wall_s": round(figures["wall_s"], 3), "succeeded": figures["succeeded"],
            "per_run_s": round(figures["wall_s"] / count, 3)}


# --------------------------------------------------------------------------------------- 2: listing
def insert_runs(database_url: str, count: int, tasks_per_run: int, spec: dict[str, Any],
                experiment_ids: list[str]) -> float:
    """Bulk-insert `count` finished-looking runs (and their tasks) straight into the store."""
    from sqlalchemy import insert

    from flowdeck.store import RunRow, TaskRow, open_store

    store = open_store(database_url)
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    host, pid = socket.gethostname(), os.getpid()
    states = ["SUCCEEDED"] * 80 + ["FAILED"] * 12 + ["CANCELED"] * 5 + ["RUNNING"] * 3
    started = time.perf_counter()
    try:
        for offset in range(0, count, 1000):
            runs, tasks = [], []
            for index in range(offset, min(offset + 1000, count)):
                created = now - timedelta(days=30) + timedelta(seconds=rng.uniform(0, 30 * 86400))
                state = rng.choice(states)
                finished = None if state == "RUNNING" else created + timedelta(seconds=rng.uniform(5, 900))
                run_id = uuid.uuid4().hex
                runs.append({
                    "id": run_id, "pipeline_name": "load-tiny", "display_name": f"nightly {index}",
                    "state": state, "pipeline_spec": spec, "arguments": {"a": index, "b": 2},
                    "outputs": {"parameters": {"Output": index + 3}} if state == "SUCCEEDED" else {},
                    "enable_caching": False, "error": "task add failed" if state == "FAILED" else None,
                    # RUNNING ones name this (live) process, so nothing takes them for orphans.
                    "engine_host": host, "engine_pid": pid, "created_at": created, "started_at": created,
                    "finished_at": finished, "namespace": "", "experiment_id": rng.choice(experiment_ids),
                    "storage_state": "AVAILABLE", "origin": "embedded",
                })
                for position in range(tasks_per_run):
                    tasks.append({
                        "id": uuid.uuid4().hex, "run_id": run_id, "parent_id": None, "name": f"add-{position + 1}",
                        "display_name": "add", "path": f"add-{position + 1}", "kind": "container",
                        "state": "SUCCEEDED" if state == "SUCCEEDED" else state, "attempts": 1,
                        "inputs": {"parameters": {"a": index, "b": 2}}, "outputs": {"parameters": {"Output": 3}},
                        "created_at": created, "started_at": created, "finished_at": finished,
                    })
            with store.engine.begin() as conn:
                conn.execute(insert(RunRow), runs)
                if tasks:
                    conn.execute(insert(TaskRow), tasks)
    finally:
        store.close()
    return time.perf_counter() - started


def time_list_calls(url: str, experiment_id: str, calls: int) -> list[dict[str, Any]]:
    state_filter = json.dumps({"predicates": [{"key": "state", "operation": "EQUALS", "string_value": "FAILED"}]})
    anything: Callable[[dict[str, Any]], bool] = lambda run: True  # noqa: E731
    cases: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], bool]]] = []
    for size in (10, 100):
        base = {"page_size": size, "sort_by": "created_at desc"}
        cases += [
            (f"page_size {size}, no filter", base, anything),
            (f"page_size {size}, experiment", {**base, "experiment_id": experiment_id},
             lambda run: run.get("experiment_id") == experiment_id),
            (f"page_size {size}, state=FAILED", {**base, "filter": state_filter},
             lambda run: run.get("state") == "FAILED"),
        ]
    results = []
    with httpx.Client(base_url=url, timeout=30, headers={"Content-Type": "application/json"}) as http:
        first = http.get(f"{API}/runs", params={"page_size": 100, "sort_by": "created_at desc"}).json()
        cases.append(("page_size 100, 2nd page (token)",
                      {"page_size": 100, "sort_by": "created_at desc", "page_token": first["next_page_token"]},
                      lambda run: run["created_at"] <= first["runs"][-1]["created_at"]))
        for name, params, matches in cases:
            for _ in range(10):  # warm-up: connections, statement caches
                http.get(f"{API}/runs", params=params).raise_for_status()
            samples = []
            expected = params["page_size"]
            for _ in range(calls):
                started = time.perf_counter()
                response = http.get(f"{API}/runs", params=params)
                samples.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
            body = response.json()
            runs = body.get("runs", [])
            created = [run["created_at"] for run in runs]
            results.append({
                "case": name, "calls": calls, **_percentiles(samples), "returned": len(runs),
                "total_size": body.get("total_size"), "full_page": len(runs) == expected,
                "sorted_desc": created == sorted(created, reverse=True), "matches": all(map(matches, runs)),
            })
            progress(f"    {name:<34} p50 {results[-1]['p50']:7.2f} ms  p95 {results[-1]['p95']:7.2f} ms")
    return results


def time_kfp_client_list(url: str, calls: int) -> dict[str, Any]:
    import kfp

    client = kfp.Client(host=url, namespace="")
    for _ in range(5):
        client.list_runs(page_size=100, sort_by="created_at desc")
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        response = client.list_runs(page_size=100, sort_by="created_at desc")
        samples.append((time.perf_counter() - started) * 1000)
    return {"case": "kfp.Client.list_runs, page_size 100", "calls": calls, **_percentiles(samples),
            "returned": len(response.runs or [])}


# ------------------------------------------------------------------------------------------- driver
def run_backend(name: str, database_url: str, args: argparse.Namespace, workdir: Path,
                package: Path, spec: dict[str, Any]) -> dict[str, Any]:
    import kfp

    progress(f"[{name}] starting flowdeck up")
    server = Server(workdir / f"home-{name}", database_url)
    server.start()
    figures: dict[str, Any] = {"backend": name, "ready_s": round(server.ready_s, 3)}
    try:
        progress(f"[{name}] up at {server.url} in {server.ready_s:.2f} s; {args.runs} concurrent run_pipeline calls")
        figures["concurrent"] = concurrent_runs(server.url, package, args.runs, args.run_timeout)
        c = figures["concurrent"]
        progress(f"[{name}]   all finished after {c['all_finished_wall_s']:.2f} s: {c['states']}")

        client = kfp.Client(host=server.url, namespace="")
        experiment_ids = [client.create_experiment(name=f"history-{i}").experiment_id for i in range(5)]
        progress(f"[{name}] inserting {args.stored:,} runs ({args.tasks_per_run} tasks each) into the store")
        figures["insert_s"] = round(insert_runs(database_url, args.stored, args.tasks_per_run, spec, experiment_ids), 2)
        progress(f"[{name}]   inserted in {figures['insert_s']:.1f} s; timing list_runs, {args.calls} calls per case")
        figures["list"] = time_list_calls(server.url, experiment_ids[0], args.calls)
        figures["kfp_client_list"] = time_kfp_client_list(server.url, max(20, args.calls // 4))
        figures["stored_runs"] = figures["list"][0]["total_size"]
    finally:
        server.stop()
    return figures


def _environment() -> dict[str, Any]:
    return describe_environment("kfp")




def report(figures: dict[str, Any]) -> str:
    env = figures["environment"]
    lines = [
        "",
        f"flowdeck {env['flowdeck']} ({env['flowdeck_commit']}) control plane under load; kfp.Client {env['kfp']}; "
        f"Python {env['python']}, {env['cpus']} CPUs",
        f"load average (1/5/15 min) before: {figures['load_before']}, after: {figures['load_after']}",
        "The peer, the KFP API server, cannot run here (it needs Kubernetes, MySQL and Argo Workflows); kfp.local "
        "has no API server, so only the cost of the same runs through kfp.local, one after another, is compared.",
        "",
    ]
    backends = figures["backends"]
    local = figures.get("kfp_local")
    count = figures["runs"]
    rows: list[tuple[str, ...]] = [("concurrent runs", *(b["backend"] for b in backends))]
    rows.append(("flowdeck up ready", *(f"{b['ready_s']:.2f} s" for b in backends)))
    rows.append((f"{count} run_pipeline calls return",
                 *(f"{b['concurrent']['submit_wall_s']:.2f} s" for b in backends)))
    rows.append(("  create call p50 / p95", *(f"{b['concurrent']['create_latency_ms']['p50']:.0f} / "
                                              f"{b['concurrent']['create_latency_ms']['p95']:.0f} ms"
                                              for b in backends)))
    rows.append((f"all {count} runs finished", *(f"{b['concurrent']['all_finished_wall_s']:.2f} s" for b in backends)))
    rows.append(("  states", *(", ".join(f"{k} {v}" for k, v in sorted(b["concurrent"]["states"].items()))
                               for b in backends)))
    if local:
        rows.append((f"kfp.local, {local['runs']} runs in sequence", *(
            f"{local['wall_s']:.1f} s{' (est.)' if local.get('estimated') else ''}" for _ in backends)))
        rows.append(("  kfp.local / flowdeck", *(f"{local['wall_s'] / b['concurrent']['all_finished_wall_s']:.1f}x"
                                                 for b in backends)))
    lines += table(rows)
    lines.append("")
    verdicts = []
    for backend in backends:
        stored = backend.get("stored_runs")
        lines.append(f"list_runs over HTTP, {backend['backend']}: {stored:,} runs stored "
                     f"(bulk insert {backend['insert_s']:.1f} s), sort_by created_at desc")
        rows = [("case", "calls", "p50", "p95", "p99", "max", "returned", f"p95 < {TARGET_P95_MS:.0f} ms")]
        for case in backend["list"] + [backend["kfp_client_list"]]:
            target = case in backend["list"]
            ok = case["p95"] < TARGET_P95_MS
            if target:
                verdicts.append(ok)
            rows.append((case["case"], str(case["calls"]), f"{case['p50']:.1f} ms", f"{case['p95']:.1f} ms",
                         f"{case['p99']:.1f} ms", f"{case['max']:.1f} ms", str(case["returned"]),
                         ("PASS" if ok else "FAIL") if target else "(client side)"))
        lines += ["  " + line for line in table(rows)]
        bad = [c["case"] for c in backend["list"] if not (c["sorted_desc"] and c["full_page"] and c["matches"])]
        if bad:
            lines.append(f"  WRONG ANSWERS (not a full page, not sorted newest first, or not what the filter "
                         f"asked for): {bad}")
            verdicts.append(False)
        lines.append("")
    all_ok = all(verdicts) and all(b["concurrent"]["all_succeeded"] for b in backends)
    lines.append(f"Overall: {'PASS' if all_ok else 'FAIL'} (all {count} concurrent runs SUCCEEDED on every backend, "
                 f"and every list_runs case p95 < {TARGET_P95_MS:.0f} ms)")
    if local:
        how = ("measured" if not local.get("estimated")
               else f"estimated from {local['measured_runs']} measured runs")
        lines.append(f"kfp.local reference ({how}): {local['per_run_s']:.2f} s per run, SubprocessRunner("
                     "use_venv=False), one run at a time: kfp.local has no server and no concurrent runs.")
    lines.append(f"total benchmark time: {figures['total_s']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Load on flowdeck's control plane through the real kfp.Client.")
    parser.add_argument("--database-url", help="also run on this PostgreSQL server (a fresh database is created on "
                        "it and dropped); default: FLOWDECK_TEST_POSTGRES_URL when set")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL even when a URL is known")
    parser.add_argument("--runs", type=int, help="concurrent run_pipeline calls (default 50)")
    parser.add_argument("--stored", type=int, help="runs inserted before timing list_runs (default 10000)")
    parser.add_argument("--tasks-per-run", type=int, default=2, help="task rows per inserted run (default 2)")
    parser.add_argument("--calls", type=int, help="list_runs calls per case (default 200)")
    parser.add_argument("--kfp-local-runs", type=int,
                        help="kfp.local runs actually measured; the rest is extrapolated (default: all of --runs)")
    parser.add_argument("--skip-kfp-local", action="store_true", help="no kfp.local reference")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="seconds to wait for the runs to finish")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 10 runs, 2,000 stored, 50 calls, kfp.local 3 runs extrapolated")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (table to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (homes, server logs)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (10 if args.quick else 50)
    args.stored = args.stored or (2000 if args.quick else 10000)
    args.calls = args.calls or (50 if args.quick else 200)
    local_runs = min(args.kfp_local_runs or (3 if args.quick else args.runs), args.runs)

    postgres = None if args.sqlite_only else (args.database_url or os.environ.get("FLOWDECK_TEST_POSTGRES_URL"))
    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-load-"))
    package = workdir / "tiny.yaml"
    compiler.Compiler().compile(tiny, str(package))
    import yaml

    spec = yaml.safe_load(package.read_text())
    figures: dict[str, Any] = {"environment": _environment(), "runs": args.runs, "stored": args.stored,
                               "load_before": [round(v, 2) for v in os.getloadavg()], "backends": []}
    started = time.perf_counter()
    try:
        figures["backends"].append(
            run_backend("sqlite", f"sqlite:///{workdir / 'sqlite' / 'flowdeck.db'}", args, workdir, package, spec))
        if postgres:
            with postgres_database(postgres) as url:
                figures["backends"].append(run_backend("postgresql", url, args, workdir, package, spec))
        else:
            progress("no PostgreSQL URL (--database-url or FLOWDECK_TEST_POSTGRES_URL): SQLite only")
        if not args.skip_kfp_local:
            progress(f"kfp.local: {local_runs} runs of the same pipeline, one after another")
            local = kfp_local_sequential(local_runs, workdir)
            if local_runs < args.runs:
                local.update(estimated=True, measured_runs=local_runs, runs=args.runs,
                             wall_s=round(local["per_run_s"] * args.runs, 1))
            figures["kfp_local"] = local
    finally:
        finish(figures, started, workdir, args.keep)
    emit(report(figures), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
