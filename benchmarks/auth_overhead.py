"""What authorization adds to an API request: single-user `flowdeck up` against a multi-user one.

    python benchmarks/auth_overhead.py              # 300 calls per case (default), about a minute
    python benchmarks/auth_overhead.py --calls 600
    python benchmarks/auth_overhead.py --json       # the figures as JSON on stdout (table to stderr)

Two `flowdeck up --port 0` servers start, each in a temporary home on SQLite:

(a) single-user: loopback, no users: every request is the implicit admin; nothing is looked up;
(b) multi-user: users `root` (cluster admin) and `alice`; a `Profile` team-a owned by alice, applied
    over the API, so its controller binds her as its owner; alice's API token is limited to team-a
    (read, write); root has a token of their own. Every request is authenticated (the token's row, the
    user, their bindings) and the run list is filtered to the profiles the caller may read.

Both stores hold 100 runs (b: 50 in team-a, 50 in team-b). Then `GET /apis/v2beta1/runs?page_size=10`
and `GET /apis/v2beta1/healthz` are timed over one persistent httpx connection per case: (a) without
credentials, (b) with alice's token and with root's token. Each iteration sends the request once per
case in a random order (after a warm-up), and the difference (b) - (a) is taken within the iteration:
a paired comparison, so that load from elsewhere on the machine cancels out instead of deciding the
verdict. Reported: p50/p95 per case and the median paired difference, PASS/FAIL against 0.5 ms (the
issue's target). Two servers still differ by more than authorization costs (their databases, their
processes' luck), so `healthz` is also timed on the multi-user server alone: anonymous (the guard
resolves no credential) against alice's token and alice's login cookie, which only the credential
separates.

An in-process micro-benchmark times what the server does per request to decide: `profiles.authn.
authenticate` on a request's ASGI scope, against server (b)'s own database, plus `Access.require`
(alice's token; root's token; and for reference the login-cookie path, which also records when the
login was last seen). Its CPU time per decision (`time.process_time`) is printed beside the wall
time: on a busy machine the wall time also counts waiting for a core.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from control_plane_load import Server
from reporting import describe_environment, emit, finish, progress, table

TARGET_P50_MS = 0.5
API = "/apis/v2beta1"
PASSWORD = "correct horse battery"
PROFILE = "team-a"




# ------------------------------------------------------------------------------------------- server
def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: "
                           f"{response.status_code} {response.text[:300]}")
    return response.json()


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _token_of(url: str, user: str, body: dict[str, Any]) -> str:
    """Sign in as `user` (a login, as a browser would) and mint an API token with `body`."""
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=30) as browser:
        _ok(browser.post("/login", json={"username": user, "password": PASSWORD}))
        return _ok(browser.post("/apis/flowdeck/v1/tokens", json=body))["token"]


def set_up_multi_user(url: str) -> dict[str, str]:
    """Users root (cluster admin) and alice, profile team-a owned by alice; their tokens (and root's login)."""
    users = f"{url}/apis/flowdeck/v1/users"
    _ok(httpx.post(users, json={"name": "root", "password": PASSWORD, "cluster_admin": True}))  # single-user still
    _wait(lambda: httpx.get(f"{url}{API}/runs").status_code == 401, "the server to require credentials")
    root = _token_of(url, "root", {"note": "benchmark"})
    _ok(httpx.post(users, json={"name": "alice", "password": PASSWORD}, headers={"Authorization": f"Bearer {root}"}))
    profile = {"apiVersion": "kubeflow.org/v1", "kind": "Profile", "metadata": {"name": PROFILE},
               "spec": {"owner": {"kind": "User", "name": "alice"}}}
    _ok(httpx.post(f"{url}/apis/flowdeck/v1/apply", json={"items": [profile]},
                   headers={"Authorization": f"Bearer {root}"}))

    def alice_bound() -> bool:
        try:
            _token_of(url, "alice", {"profile": PROFILE, "scopes": ["read"], "note": "probe"})
            return True
        except RuntimeError:
            return False

    _wait(alice_bound, "the profile controller to bind alice as team-a's owner")
    alice = _token_of(url, "alice", {"profile": PROFILE, "scopes": ["read", "write"], "note": "benchmark"})
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=30) as browser:
        _ok(browser.post("/login", json={"username": "alice", "password": PASSWORD}))
        cookie = browser.cookies["flowdeck_login"]
    return {"alice": alice, "root": root, "alice_cookie": cookie}


def insert_runs(database_url: str, namespaces: list[str], per_namespace: int) -> None:
    """Finished-looking runs straight into the store (the list has something to page through)."""
    from sqlalchemy import insert

    from flowdeck.store import RunRow, open_store

    store = open_store(database_url)
    now = datetime.now(timezone.utc)
    rows = [{"id": uuid.uuid4().hex, "pipeline_name": "bench", "display_name": f"run {i}", "state": "SUCCEEDED",
             "pipeline_spec": {}, "arguments": {}, "outputs": {}, "enable_caching": False,
             "created_at": now - timedelta(minutes=i), "started_at": now - timedelta(minutes=i),
             "finished_at": now - timedelta(minutes=i) + timedelta(seconds=5), "namespace": namespace,
             "storage_state": "AVAILABLE", "origin": "embedded"}
            for namespace in namespaces for i in range(per_namespace)]
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(RunRow), rows)
    finally:
        store.close()


# ---------------------------------------------------------------------------------------- measuring
def _percentiles(samples_ms: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return {"p50": round(cuts[49], 3), "p95": round(cuts[94], 3)}


def time_http(cases: dict[str, tuple[str, dict[str, str]]], paths: dict[str, tuple[str, dict[str, Any]]],
              calls: int, baseline: str) -> dict[str, dict[str, Any]]:
    """p50/p95 of every (case, path), and the p50 of the paired differences to the `baseline` case.

    One persistent connection per case. Each iteration sends the same request once per case, in a fresh
    random order, so a burst of load from elsewhere falls on all cases of that iteration alike; the
    difference to the baseline is taken within each iteration (a paired comparison) before the median.
    """
    clients = {name: httpx.Client(base_url=url, headers=headers, timeout=30) for name, (url, headers) in cases.items()}
    samples: dict[tuple[str, str], list[float]] = {(c, p): [] for c in cases for p in paths}
    returned: dict[tuple[str, str], int] = {}
    order = list(clients)
    shuffle = random.Random(7).shuffle
    try:
        for client in clients.values():  # warm-up: connections, caches, the first query plans
            for path, params in paths.values():
                for _ in range(20):
                    client.get(path, params=params).raise_for_status()
        for path_name, (path, params) in paths.items():
            for _ in range(calls):
                shuffle(order)
                for case in order:
                    started = time.perf_counter()
                    response = clients[case].get(path, params=params)
                    samples[case, path_name].append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
            for case, client in clients.items():
                returned[case, path_name] = len(client.get(path, params=params).json().get("runs", []))
    finally:
        for client in clients.values():
            client.close()
    figures = {}
    for (case, path), values in samples.items():
        paired = [value - base for value, base in zip(values, samples[baseline, path], strict=True)]
        figures[f"{case} | {path}"] = {"case": case, "path": path, "calls": len(values), **_percentiles(values),
                                       "returned": returned[case, path],
                                       "paired_p50": round(statistics.median(paired), 3)}
    return figures


def time_in_process(home: Path, credentials: dict[str, str], calls: int) -> list[dict[str, Any]]:
    """`authenticate` + `Access.require` as the server runs them, on server (b)'s database."""
    from flowdeck.config import Settings
    from flowdeck.controlplane.auth import Access
    from flowdeck.profiles.authn import authenticate
    from flowdeck.store import open_store
    from flowdeck.store.identity import IdentityStore

    settings = Settings(home=home)
    store = open_store(settings.resolved_database_url)
    identity = IdentityStore(store.engine)

    def scope(header: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"type": "http", "scheme": "http", "client": ("127.0.0.1", 50000), "headers": [
            (b"host", b"127.0.0.1"), (b"accept", b"application/json"), header]}

    cases = [
        ("alice's token (team-a)", scope((b"authorization", f"Bearer {credentials['alice']}".encode()))),
        ("root's token (cluster admin)", scope((b"authorization", f"Bearer {credentials['root']}".encode()))),
        ("alice's login cookie", scope((b"cookie", f"flowdeck_login={credentials['alice_cookie']}".encode()))),
    ]
    results = []
    try:
        for name, request in cases:
            def decide(request: dict[str, Any] = request) -> None:
                principal = authenticate(request, identity=identity, settings=settings)
                Access(principal, []).require("read", PROFILE)

            for _ in range(50):
                decide()
            values, cpu = [], []
            for _ in range(calls):
                started, started_cpu = time.perf_counter(), time.process_time()
                decide()
                values.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
            results.append({"case": name, "calls": calls, **_percentiles(values),
                            "cpu_p50": round(statistics.median(cpu), 3)})
            progress(f"    {name:<30} p50 {results[-1]['p50']:.3f} ms  p95 {results[-1]['p95']:.3f} ms  "
                      f"CPU p50 {results[-1]['cpu_p50']:.3f} ms")
    finally:
        store.close()
    return results


# ------------------------------------------------------------------------------------------- report
def _environment() -> dict[str, Any]:
    return describe_environment()




def report(figures: dict[str, Any]) -> str:
    env = figures["environment"]
    http = figures["http"]
    lines = [
        "",
        f"flowdeck {env['flowdeck']} ({env['flowdeck_commit']}): what authorization adds per API request; "
        f"Python {env['python']}, {env['cpus']} CPUs, SQLite",
        f"load average (1/5/15 min) before: {figures['load_before']}, after: {figures['load_after']}",
        "",
        "over HTTP, one persistent connection per case, the cases in random order within each iteration; the\n"
        "difference to single-user is taken per iteration (paired), then its median:",
    ]
    rows: list[tuple[str, ...]] = [("request", "server, caller", "calls", "p50", "p95", "runs",
                                    "paired p50 diff", f"< {TARGET_P50_MS} ms")]
    verdicts = []
    for path in figures["paths"]:
        for case in http.values():
            if case["path"] != path:
                continue
            extra = case["paired_p50"]
            single = case["case"] == "single-user"
            ok = extra < TARGET_P50_MS
            if not single:
                verdicts.append(ok)
            rows.append((path, case["case"], str(case["calls"]), f"{case['p50']:.3f} ms", f"{case['p95']:.3f} ms",
                         str(case["returned"]) if "runs" in path else "-",
                         "-" if single else f"{extra:+.3f} ms", "-" if single else ("PASS" if ok else "FAIL")))
    lines += ["  " + line for line in table(rows)]
    lines += ["", "over HTTP on the multi-user server alone (the same process and database, so only the credential "
                  "differs):"]
    rows = [("request", "caller", "calls", "p50", "p95", "paired p50 diff", f"< {TARGET_P50_MS} ms")]
    for case in figures["same_server"].values():
        baseline = case["case"] == "anonymous"
        ok = case["paired_p50"] < TARGET_P50_MS
        if not baseline:
            verdicts.append(ok)
        rows.append((case["path"], case["case"], str(case["calls"]), f"{case['p50']:.3f} ms", f"{case['p95']:.3f} ms",
                     "-" if baseline else f"{case['paired_p50']:+.3f} ms", "-" if baseline else
                     ("PASS" if ok else "FAIL")))
    lines += ["  " + line for line in table(rows)]
    lines += ["", "in process, per request: profiles.authn.authenticate(scope) + Access.require('read', team-a):"]
    rows = [("credential", "calls", "p50", "p95", "CPU p50", f"p50 < {TARGET_P50_MS} ms")]
    for case in figures["in_process"]:
        ok = case["p50"] < TARGET_P50_MS
        verdicts.append(ok)
        rows.append((case["case"], str(case["calls"]), f"{case['p50']:.3f} ms", f"{case['p95']:.3f} ms",
                     f"{case['cpu_p50']:.3f} ms", "PASS" if ok else "FAIL"))
    lines += ["  " + line for line in table(rows)]
    lines += ["", f"Overall: {'PASS' if all(verdicts) else 'FAIL'} (authorization adds under {TARGET_P50_MS} ms "
                  "per request at p50, over HTTP and in process)",
              f"total benchmark time: {figures['total_s']} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="What authorization adds per flowdeck API request.")
    parser.add_argument("--calls", type=int, default=300, help="HTTP calls per case and request (default 300)")
    parser.add_argument("--micro-calls", type=int, default=3000, help="in-process decisions timed per credential")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (table to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (homes, server logs)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-auth-"))
    figures: dict[str, Any] = {"environment": _environment(), "load_before": [round(v, 2) for v in os.getloadavg()]}
    single, multi = (Server(workdir / name, f"sqlite:///{workdir / name / 'flowdeck.db'}")
                     for name in ("single-user", "multi-user"))
    started = time.perf_counter()
    try:
        progress("starting a single-user and a multi-user flowdeck up")
        single.start()
        multi.start()
        credentials = set_up_multi_user(multi.url)
        insert_runs(single.database_url, [""], 100)
        insert_runs(multi.database_url, [PROFILE, "team-b"], 50)
        paths = {f"{API}/runs?page_size=10": (f"{API}/runs", {"page_size": 10}),
                 f"{API}/healthz": (f"{API}/healthz", {})}
        figures["paths"] = list(paths)
        cases = {
            "single-user": (single.url, {}),
            "multi-user, alice's team-a token": (multi.url, {"Authorization": f"Bearer {credentials['alice']}"}),
            "multi-user, root's cluster-admin token": (multi.url, {"Authorization": f"Bearer {credentials['root']}"}),
        }
        progress(f"timing {args.calls} calls per case and request over HTTP, the cases interleaved")
        figures["http"] = time_http(cases, paths, args.calls, baseline="single-user")
        progress("timing healthz on the multi-user server alone: anonymous against alice's token")
        figures["same_server"] = time_http({
            "anonymous": (multi.url, {}),
            "alice's team-a token": (multi.url, {"Authorization": f"Bearer {credentials['alice']}"}),
            "alice's login cookie": (multi.url, {"Cookie": f"flowdeck_login={credentials['alice_cookie']}"}),
        }, {f"{API}/healthz": (f"{API}/healthz", {})}, args.calls, baseline="anonymous")
        progress(f"timing {args.micro_calls} in-process decisions per credential")
        figures["in_process"] = time_in_process(multi.home, credentials, args.micro_calls)
    finally:
        single.stop()
        multi.stop()
        finish(figures, started, workdir, args.keep)
    emit(report(figures), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
