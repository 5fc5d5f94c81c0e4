"""flowdeck's model server against KServe's sklearn server and a bare Starlette floor, same model, same load.

    python benchmarks/serving_vs_kserve.py            # full run: about 7 min on 2 cores (+1-2 min the first time)
    python benchmarks/serving_vs_kserve.py --quick    # smoke run: about 1.5 min
    python benchmarks/serving_vs_kserve.py --json     # the figures as JSON on stdout; the table goes to stderr

One tiny scikit-learn model (LogisticRegression, 4 features, 3 classes, fit on 200 generated rows) is saved as
model.joblib in a KServe-layout directory, and these servers load it, one process each, all on 127.0.0.1:

- kserve: kserve==0.21.0 in its own venv (created on first use under ~/.cache/flowdeck-bench/kserve-0.21.0,
  pinned to this interpreter's scikit-learn so the same file loads), running sklearnserver's model and
  command line (kserve_sklearnserver.py: sklearnserver is not on PyPI), logging as KServe ships it (4 lines
  per request, written to a file);
- kserve-silent: the same with `--enable_latency_logging false`, every kserve/uvicorn logger at WARNING and
  PYTHONWARNINGS=ignore (FastAPI warns on every request that ORJSONResponse is deprecated): KServe's best case;
- flowdeck: `flowdeck serve MODEL_DIR --name NAME --port N` (skipped, with a line saying so, while the command
  does not exist), and flowdeck-batch: the same with adaptive batching on (`--max-batch-size 32
  --max-batch-latency-ms 2`);
- floor: a minimal Starlette + orjson app with one raw predict route per protocol (no validation, no logging,
  uvicorn with httptools and uvloop, access log off): what a Python ASGI server costs on this machine at least.

Before timing, each server answers one V1 and one V2 request on 8 rows and the benchmark row; every prediction
must equal the model's own `predict`, or the server is left out of the figures.

Load: wrk 4.x (`apt-get install wrk`), a C closed-loop generator: N keep-alive connections each send the next
request as soon as the answer arrives. One thread, a Lua script with the pre-encoded body, `Content-Type:
application/json`; each cell gets a 1 s warm-up, then `--duration` seconds measured; wrk's own histogram gives
p50/p99, and every non-2xx answer or socket error is counted (a cell with errors says so). The payloads are
kserve.md's: V1 `POST /v1/models/NAME:predict` `{"instances": [[4 floats]]}`, V2 `POST /v2/models/NAME/infer`
with one FP32 [1, 4] input. Cells: V1 and V2 at 1 and 16 connections for every server; V1 and V2 at 64
connections for flowdeck with and without batching. The cells run in turn through all servers (all started
up front, idle when not measured), so rows compared in a ratio are measured minutes apart at most; with
`--rounds N` (default 3) the whole matrix repeats, each cell reports its median run by req/s, and each ratio
is paired: the median over rounds of that round's ratio, whose two runs were seconds apart.

Pinning: on a machine with 2+ CPUs every server runs under `taskset` on one CPU and wrk on another. A server is
one Python process, so one CPU is what it can use anyway; pinning keeps wrk off the server's CPU, so the client
never takes CPU time from the server it measures, and every server gets the same CPU. It does not shield either
from other work on the machine: on the shared 2-core machine the spread between rounds (20-50 % at load average
2-8) came from that, pinned or not. `--no-pin` turns pinning off.

The load generator's ceiling is printed: the share of its CPU wrk used in every cell (getrusage of the finished
wrk process over the cell's wall time; near 1.0 a cell would measure wrk, not the server), and wrk against the
floor's no-op GET route: its req/s, wrk's CPU per request and the rate that implies for wrk alone on one CPU.
Server CPU time per request (from /proc, the server's process tree) is printed too, and its kserve/flowdeck
ratio: on a shared machine it moves less than req/s.

Targets (issue 6, acceptance 4), PASS/FAIL: flowdeck V2 req/s at 16 connections >= 2.5x kserve's, V1 >= 2x;
flowdeck p50 at 1 connection <= 0.4 ms (V1 and V2); flowdeck-batch at 64 connections >= 3x flowdeck without.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reporting import describe_environment, emit, finish, progress, table

KSERVE_VERSION = "0.21.0"
MODEL_NAME = "iris-like"
BENCH_ROW = [0.675, 1.148, -0.37, -1.393]
TARGET_V2_RATIO = 2.5
TARGET_V1_RATIO = 2.0
TARGET_P50_MS = 0.4
TARGET_BATCH_RATIO = 3.0
BATCH_FLAGS = {"--max-batch-size": "32", "--max-batch-latency-ms": "2"}
CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent
QUIET_LOG_CONFIG = {
    "version": 1, "disable_existing_loggers": False,
    "loggers": {name: {"level": "WARNING"} for name in ("kserve", "kserve.trace", "uvicorn", "uvicorn.access")},
}
WRK_SCRIPT = """wrk.method = "{method}"
wrk.body = [=[{body}]=]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("FDBENCH %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""




# --------------------------------------------------------------------------------------------- model
@dataclass
class Workload:
    """The model directory, the request bodies and the predictions every server must give."""

    model_dir: Path
    check_rows: list[list[float]]
    expected_v1: list[int]  # predict on float64 rows, as V1 servers see them
    expected_v2: list[int]  # predict on the rows as FP32, as V2 servers see them
    bench_expected: int
    bodies: dict[str, bytes] = field(default_factory=dict)


def make_workload(workdir: Path) -> Workload:
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    features, labels = make_classification(n_samples=200, n_features=4, n_informative=3, n_redundant=0,
                                           n_classes=3, random_state=0)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    model_dir = workdir / "model"
    model_dir.mkdir()
    joblib.dump(model, model_dir / "model.joblib")
    rows = features[:8].round(3).tolist()
    workload = Workload(
        model_dir=model_dir, check_rows=rows,
        expected_v1=model.predict(np.asarray(rows)).tolist(),
        expected_v2=model.predict(np.asarray(rows, dtype=np.float32)).tolist(),
        bench_expected=int(model.predict(np.asarray([BENCH_ROW], dtype=np.float32))[0]))
    workload.bodies = {"v1": v1_body([BENCH_ROW]), "v2": v2_body([BENCH_ROW])}
    return workload


def v1_body(rows: list[list[float]]) -> bytes:
    return json.dumps({"instances": rows}, separators=(",", ":")).encode()


def v2_body(rows: list[list[float]]) -> bytes:
    flat = [value for row in rows for value in row]
    tensor = {"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": flat}
    return json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()


def route(protocol: str) -> str:
    """v1 and v2: the predict routes; noop: the floor's route that does no work (the load generator's ceiling)."""
    return {"v1": f"/v1/models/{MODEL_NAME}:predict", "v2": f"/v2/models/{MODEL_NAME}/infer", "noop": "/noop"}[protocol]


# ----------------------------------------------------------------------------------------- the floor
def run_floor(model_dir: str, name: str, port: int) -> None:
    """The minimal Starlette + orjson server: a raw predict per protocol, nothing else."""
    import joblib
    import numpy as np
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    model = joblib.load(Path(model_dir) / "model.joblib")

    def answer(document: dict[str, Any]) -> Response:
        return Response(orjson.dumps(document), media_type="application/json")

    async def v1(request: Request) -> Response:
        instances = orjson.loads(await request.body())["instances"]
        return answer({"predictions": model.predict(np.asarray(instances)).tolist()})

    async def v2(request: Request) -> Response:
        tensor = orjson.loads(await request.body())["inputs"][0]
        predictions = model.predict(np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"]))
        return answer({"model_name": name, "outputs": [{"name": "output-0", "shape": list(predictions.shape),
                                                         "datatype": "INT64", "data": predictions.tolist()}]})

    async def empty(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    app = Starlette(routes=[Route(f"/v1/models/{name}:predict", v1, methods=["POST"]),
                            Route(f"/v2/models/{name}/infer", v2, methods=["POST"]),
                            Route("/v2/health/ready", empty), Route("/noop", empty)])
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning")


# ---------------------------------------------------------------------------------------- the servers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree_cpu(pid: int) -> float:
    """utime+stime of a process and its live descendants, in seconds."""
    parents: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = int(fields[11]) + int(fields[12])
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += ticks.get(current, 0)
        todo += parents.get(current, [])
    return total / CLK_TCK


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class Server:
    """One model server as a subprocess: started, checked ready over /v2/health/ready, stopped."""

    def __init__(self, name: str, command: list[str], log: Path, port: int, env: dict[str, str] | None = None,
                 announce: str | None = None) -> None:
        self.name, self.command, self.log, self.port = name, command, log, port
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.announce = announce  # a line the server prints when ready, if it has such a contract
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_s = 0.0

    def start(self, timeout: float = 120.0) -> None:
        started = time.perf_counter()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self._tail()}")
            if (self.announce is None or self.announce in self.log.read_text(errors="replace")) \
                    and self._ready():
                self.ready_s = round(time.perf_counter() - started, 2)
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s:\n{self._tail()}")

    def _ready(self) -> bool:
        try:
            status, _ = request(self.port, "GET", "/v2/health/ready")
        except OSError:
            return False
        return status == 200

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def verify(server: Server, workload: Workload) -> str | None:
    """None when every prediction equals the model's own, else what went wrong."""
    cases = [("v1", v1_body(workload.check_rows), workload.expected_v1),
             ("v2", v2_body(workload.check_rows), workload.expected_v2),
             ("v1", workload.bodies["v1"], [workload.bench_expected]),
             ("v2", workload.bodies["v2"], [workload.bench_expected])]
    for protocol, body, expected in cases:
        status, answer = request(server.port, "POST", route(protocol), body)
        if status != 200:
            return f"{protocol} answered {status}: {answer[:300]!r}"
        document = json.loads(answer)
        got = document["predictions"] if protocol == "v1" else document["outputs"][0]["data"]
        if [int(value) for value in got] != expected:
            return f"{protocol} predicted {got}, the model predicts {expected}"
    return None


# ------------------------------------------------------------------------------------------- kserve
def kserve_python(cache_dir: Path, sklearn_version: str) -> Path:
    """The python of a venv holding kserve==KSERVE_VERSION and this interpreter's scikit-learn; made once."""
    venv = cache_dir / f"kserve-{KSERVE_VERSION}"
    marker = venv / "flowdeck-bench.json"
    wanted = {"kserve": KSERVE_VERSION, "scikit-learn": sklearn_version}
    python = venv / "bin" / "python"
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        return python
    if venv.exists() and python.exists():  # another scikit-learn: change just that
        progress(f"kserve venv: installing scikit-learn=={sklearn_version} in {venv}")
        _pip(python, [f"scikit-learn=={sklearn_version}"], venv / "pip.log")
    else:
        partial = cache_dir / f"kserve-{KSERVE_VERSION}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cache_dir.mkdir(parents=True, exist_ok=True)
        progress(f"kserve venv: creating {venv} with kserve=={KSERVE_VERSION} (once; about 1-2 minutes)")
        subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True)
        _pip(partial / "bin" / "python", [f"kserve=={KSERVE_VERSION}", f"scikit-learn=={sklearn_version}", "joblib"],
             partial / "pip.log")
        shutil.rmtree(venv, ignore_errors=True)
        partial.rename(venv)
    marker.write_text(json.dumps(wanted))
    return python


def _pip(python: Path, requirements: list[str], log: Path) -> None:
    with open(log, "wb") as out:
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], stdout=out,
                                stderr=subprocess.STDOUT)
    if result.returncode:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed; see {log}:\n"
                           + log.read_text(errors="replace")[-2000:])


def kserve_versions(python: Path) -> dict[str, str]:
    code = ("import json; from importlib import metadata; print(json.dumps({n: metadata.version(n) for n in "
            "('kserve', 'fastapi', 'uvicorn', 'scikit-learn')}))")
    return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


# ----------------------------------------------------------------------------------------- flowdeck
FLOWDECK = [sys.executable, "-c", "import sys; from flowdeck.cli.main import main; sys.exit(main())"]


def flowdeck_serve_help() -> str | None:
    """`flowdeck serve --help`, or None when there is no such command yet."""
    result = subprocess.run([*FLOWDECK, "serve", "--help"], capture_output=True, text=True, timeout=60)
    return result.stdout if result.returncode == 0 and "--name" in result.stdout else None


# ---------------------------------------------------------------------------------------------- wrk
@dataclass
class Wrk:
    binary: str
    cpu: int | None  # the CPU wrk is pinned to, or None
    scripts: dict[str, Path]

    def run(self, server: Server, protocol: str, connections: int, seconds: int) -> dict[str, Any]:
        url = f"http://127.0.0.1:{server.port}{route(protocol)}"
        command = [self.binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
                   "-s", str(self.scripts[protocol])]
        if self.cpu is not None:
            command = ["taskset", "-c", str(self.cpu), *command]
        server_cpu = _tree_cpu(server.pid)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        result = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_cpu = _tree_cpu(server.pid) - server_cpu
        client_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        if result.returncode:
            raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
        line = next(line for line in result.stdout.splitlines() if line.startswith("FDBENCH "))
        requests, duration_us, errors, p50_us, p99_us = (int(value) for value in line.split()[1:])
        duration_s = duration_us / 1e6
        requests = max(requests, 1)
        return {"requests": requests, "rps": round(requests / duration_s, 1), "p50_ms": round(p50_us / 1000, 3),
                "p99_ms": round(p99_us / 1000, 3), "errors": errors,
                "server_cpu_us_per_req": round(server_cpu / requests * 1e6, 1),
                "client_cpu_us_per_req": round(client_cpu / requests * 1e6, 1),
                "client_cores": round(client_cpu / duration_s, 2), "server_cores": round(server_cpu / duration_s, 2)}


def write_wrk_scripts(workdir: Path, workload: Workload) -> dict[str, Path]:
    scripts = {}
    json_header = 'wrk.headers["Content-Type"] = "application/json"'
    for protocol, method, body, headers in (("v1", "POST", workload.bodies["v1"], json_header),
                                            ("v2", "POST", workload.bodies["v2"], json_header),
                                            ("noop", "GET", b"", "")):
        scripts[protocol] = workdir / f"{protocol}.lua"
        scripts[protocol].write_text(WRK_SCRIPT.format(method=method, body=body.decode(), headers=headers))
    return scripts


# ------------------------------------------------------------------------------------------ the run
def build_servers(workdir: Path, workload: Workload, args: argparse.Namespace, pin: list[str],
                  notes: list[str]) -> tuple[list[Server], dict[str, Any]]:
    servers: list[Server] = []
    versions: dict[str, Any] = {}
    model_dir = str(workload.model_dir)
    python: Path | None = None
    if not args.skip_kserve:
        from importlib import metadata

        try:
            python = kserve_python(Path(args.cache_dir).expanduser(), metadata.version("scikit-learn"))
            versions["kserve_venv"] = kserve_versions(python)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            notes.append(f"kserve: skipped, its venv could not be made: {str(exc).splitlines()[0]}")
            python = None
    if python is not None:
        quiet = workdir / "kserve-quiet-logging.json"
        quiet.write_text(json.dumps(QUIET_LOG_CONFIG))
        for name, extra, env in (("kserve", [], {}),
                                 ("kserve-silent", ["--enable_latency_logging", "false", "--log_config_file",
                                                    str(quiet)], {"PYTHONWARNINGS": "ignore"})):
            if name == "kserve-silent" and args.skip_kserve_silent:
                continue
            port = free_port()
            command = [*pin, str(python), str(HERE / "kserve_sklearnserver.py"), "--model_dir", model_dir,
                       "--model_name", MODEL_NAME, "--http_port", str(port), "--grpc_port", str(free_port()),
                       "--workers", "1", *extra]
            servers.append(Server(name, command, workdir / f"{name}.log", port, env))
    help_text = flowdeck_serve_help()
    if help_text is None:
        notes.append("flowdeck: skipped, `flowdeck serve` does not exist yet in this checkout")
    else:
        base = [*pin, *FLOWDECK, "serve", model_dir, "--name", MODEL_NAME]
        if "--workers" in help_text:
            base += ["--workers", "1"]
        port = free_port()
        servers.append(Server("flowdeck", [*base, "--port", str(port)], workdir / "flowdeck.log", port,
                              announce=f"serving {MODEL_NAME} at http://"))
        if all(flag in help_text for flag in BATCH_FLAGS):
            port = free_port()
            flags = [part for pair in BATCH_FLAGS.items() for part in pair]
            servers.append(Server("flowdeck-batch", [*base, "--port", str(port), *flags],
                                  workdir / "flowdeck-batch.log", port, announce=f"serving {MODEL_NAME} at http://"))
        else:
            notes.append(f"flowdeck-batch: skipped, `flowdeck serve --help` shows no {' / '.join(BATCH_FLAGS)}")
    port = free_port()
    servers.append(Server("floor", [*pin, sys.executable, str(Path(__file__).resolve()), "--_floor", model_dir,
                                    MODEL_NAME, str(port)], workdir / "floor.log", port))
    return servers, versions


def cells_for(servers: list[Server]) -> list[tuple[str, int, str]]:
    names = [server.name for server in servers]
    cells = [(protocol, connections, name) for protocol in ("v1", "v2") for connections in (1, 16)
             for name in names if name != "flowdeck-batch"]
    cells += [(protocol, 64, name) for protocol in ("v1", "v2") for name in ("flowdeck", "flowdeck-batch")
              if "flowdeck-batch" in names]
    return cells


def measure(args: argparse.Namespace) -> dict[str, Any]:
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        raise SystemExit("wrk is not installed; it is the load generator: apt-get install wrk")
    cpus = sorted(os.sched_getaffinity(0))
    pinned = not args.no_pin and len(cpus) >= 2 and shutil.which("taskset") is not None
    client_cpu, server_cpu = (cpus[0], cpus[1]) if pinned else (None, None)
    pin = ["taskset", "-c", str(server_cpu)] if pinned else []
    duration = args.duration or (2 if args.quick else 5)
    rounds = args.rounds or (1 if args.quick else 3)
    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-serving-bench-"))
    notes: list[str] = []
    figures: dict[str, Any] = {
        "environment": describe_environment("scikit-learn", "starlette", "uvicorn", "orjson"),
        "load_before": [round(v, 2) for v in os.getloadavg()], "duration_s": duration, "rounds": rounds,
        "pinning": {"client_cpu": client_cpu, "server_cpu": server_cpu} if pinned else None,
        "wrk": subprocess.run([wrk_binary, "--version"], capture_output=True, text=True).stdout.split(" [")[0],
        "notes": notes,
    }
    servers: list[Server] = []
    started = time.perf_counter()
    try:
        workload = make_workload(workdir)
        servers, figures["versions"] = build_servers(workdir, workload, args, pin, notes)
        wrk = Wrk(wrk_binary, client_cpu, write_wrk_scripts(workdir, workload))
        ready: list[Server] = []
        for server in servers:
            progress(f"starting {server.name}")
            try:
                server.start()
            except RuntimeError as exc:
                notes.append(f"{server.name}: left out, it did not start: {str(exc).splitlines()[0]} "
                             f"(its log: {server.log}; --keep keeps it)")
                server.stop()
                continue
            problem = verify(server, workload)
            if problem:
                notes.append(f"{server.name}: left out, wrong answer: {problem}")
                server.stop()
                continue
            ready.append(server)
        figures["ready_s"] = {server.name: server.ready_s for server in ready}
        by_name = {server.name: server for server in ready}
        runs: dict[str, list[dict[str, Any]]] = {}
        served: dict[str, int] = {}
        cells = cells_for(ready)
        for round_index in range(rounds):
            for protocol, connections, name in cells:
                progress(f"round {round_index + 1}/{rounds}: {name} {protocol} c{connections}")
                warm_up = wrk.run(by_name[name], protocol, connections, 1)
                run = wrk.run(by_name[name], protocol, connections, duration)
                runs.setdefault(f"{name} {protocol} c{connections}", []).append(run)
                served[name] = served.get(name, 0) + warm_up["requests"] + run["requests"]
        figures["cells"] = {key: _median_run(values) for key, values in runs.items()}
        figures["runs"] = runs
        if "floor" in by_name:
            progress("load generator ceiling: wrk against the floor's no-op route")
            figures["ceiling"] = wrk.run(by_name["floor"], "noop", 16, duration)
            served["floor"] = served.get("floor", 0) + figures["ceiling"]["requests"]
        figures["rss_mib"] = {server.name: _rss_mib(server.pid) for server in ready}
        figures["log_bytes"] = {server.name: server.log.stat().st_size for server in ready}
        figures["requests_served"] = served  # warm-ups included: the log size is per request served
    finally:
        for server in servers:
            server.stop()
        finish(figures, started, workdir, args.keep)
    figures["targets"] = targets(figures.get("runs", {}))
    return figures


def _median_run(values: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(values, key=lambda run: run["rps"])
    median = dict(ordered[len(ordered) // 2])
    if len(values) > 1:
        median["rps_all_rounds"] = [run["rps"] for run in values]
    return median


def targets(runs: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The issue's acceptance figures with verdicts (None: a side not measured, or it had errors).

    Ratios are paired: each round's ratio of two runs measured seconds apart, then the median over rounds, so
    a slow minute on the shared machine shifts both sides of a ratio rather than one.
    """
    def clean(key: str) -> list[dict[str, Any]] | None:
        values = runs.get(key)
        return values if values and not any(run["errors"] for run in values) else None

    def check(what: str, per_round: list[float] | None, target: str, unit: str, passes: Any = None
              ) -> dict[str, Any]:
        value = round(statistics.median(per_round), 3 if unit == "ms" else 2) if per_round else None
        verdict = None if value is None or passes is None else bool(passes(value))
        return {"what": what, "value": value, "per_round": [round(v, 3) for v in per_round or []],
                "target": target, "unit": unit, "pass": verdict}

    def ratios(numerator: str, denominator: str, field: str = "rps") -> list[float] | None:
        top, bottom = clean(numerator), clean(denominator)
        return [t[field] / b[field] for t, b in zip(top, bottom, strict=True)] if top and bottom else None

    checks = []
    for protocol, target in (("v2", TARGET_V2_RATIO), ("v1", TARGET_V1_RATIO)):
        name = protocol.upper()
        checks.append(check(f"flowdeck / kserve req/s, {name} at 16 connections",
                            ratios(f"flowdeck {protocol} c16", f"kserve {protocol} c16"), f">= {target}x", "x",
                            lambda value, target=target: value >= target))
        checks.append(check(f"  (server CPU per request, kserve / flowdeck, {name})",
                            ratios(f"kserve {protocol} c16", f"flowdeck {protocol} c16", "server_cpu_us_per_req"),
                            "info", "x"))
        checks.append(check(f"  (against kserve with its logging silenced, {name})",
                            ratios(f"flowdeck {protocol} c16", f"kserve-silent {protocol} c16"), "info", "x"))
    for protocol in ("v1", "v2"):
        cell = clean(f"flowdeck {protocol} c1")
        checks.append(check(f"flowdeck p50 ms, {protocol.upper()} at 1 connection",
                            [run["p50_ms"] for run in cell] if cell else None, f"<= {TARGET_P50_MS} ms", "ms",
                            lambda value: value <= TARGET_P50_MS))
    for protocol in ("v1", "v2"):
        checks.append(check(f"batching on / off req/s, {protocol.upper()} at 64 connections",
                            ratios(f"flowdeck-batch {protocol} c64", f"flowdeck {protocol} c64"),
                            f">= {TARGET_BATCH_RATIO}x", "x", lambda value: value >= TARGET_BATCH_RATIO))
    for protocol in ("v1", "v2"):
        checks.append(check(f"flowdeck / floor req/s, {protocol.upper()} at 16 connections",
                            ratios(f"flowdeck {protocol} c16", f"floor {protocol} c16"), "info", "x"))
    return [item for item in checks if item["value"] is not None or item["target"] != "info"]


# ------------------------------------------------------------------------------------------- report


def report(figures: dict[str, Any]) -> str:
    env = figures["environment"]
    kserve = figures.get("versions", {}).get("kserve_venv")
    pinning = figures["pinning"]
    lines = [
        "",
        f"flowdeck {env['flowdeck']} ({env['flowdeck_commit']}); Python {env['python']}, {env['cpus']} CPUs; "
        f"scikit-learn {env['scikit-learn']}, starlette {env['starlette']}, uvicorn {env['uvicorn']}, "
        f"orjson {env['orjson']}",
        (f"kserve {kserve['kserve']} (fastapi {kserve['fastapi']}, uvicorn {kserve['uvicorn']}, scikit-learn "
         f"{kserve['scikit-learn']}) in its own venv" if kserve else "kserve: not run"),
        f"load generator: {figures['wrk']}, 1 thread, closed loop; {figures['duration_s']} s per cell after a 1 s "
        f"warm-up, {figures['rounds']} round(s), median by req/s",
        ("pinned: servers on CPU {server_cpu}, wrk on CPU {client_cpu}".format(**pinning) if pinning
         else "not pinned"),
        f"load average (1/5/15 min) before: {figures['load_before']}, after: {figures.get('load_after')} "
        "(other work on the machine slows every server)",
    ]
    lines += [f"NOTE {note}" for note in figures["notes"]]
    lines.append("")
    rows: list[tuple[str, ...]] = [("server", "protocol", "conns", "req/s", "p50 ms", "p99 ms", "server CPU us/req",
                                    "wrk cores", "errors")]
    for key, cell in figures.get("cells", {}).items():
        name, protocol, connections = key.split()
        rows.append((name, protocol.upper(), connections[1:], f"{cell['rps']:,.0f}", f"{cell['p50_ms']:.2f}",
                     f"{cell['p99_ms']:.2f}", f"{cell['server_cpu_us_per_req']:.0f}", f"{cell['client_cores']:.2f}",
                     str(cell["errors"])))
    lines += table(rows)
    ceiling = figures.get("ceiling")
    cells = figures.get("cells", {})
    if ceiling:
        busiest = max((cell["client_cores"] for cell in cells.values()), default=0.0)
        lines += ["", f"load generator ceiling: wrk against the floor's no-op GET route at 16 connections did "
                      f"{ceiling['rps']:,.0f} req/s using {ceiling['client_cores']:.2f} of its CPU "
                      f"({ceiling['client_cpu_us_per_req']:.0f} us per request, so "
                      f"~{1e6 / ceiling['client_cpu_us_per_req']:,.0f} req/s if it had the CPU to itself); "
                      f"the busiest cell above used {busiest:.2f} of wrk's CPU"]
    lines += ["", "targets (issue 6, acceptance 4):"]
    target_rows: list[tuple[str, ...]] = [("figure", "value", "target", "verdict", "per round")]
    for check in figures["targets"]:
        verdict = "info" if check["target"] == "info" else (
            "not measured" if check["pass"] is None else ("PASS" if check["pass"] else "FAIL"))
        value = "-" if check["value"] is None else (
            f"{check['value']:.2f}x" if check["unit"] == "x" else f"{check['value']:.3f} ms")
        per_round = " ".join(f"{v:.2f}" for v in check["per_round"]) if len(check["per_round"]) > 1 else ""
        target_rows.append((check["what"], value, check["target"], verdict, per_round))
    lines += table(target_rows)
    if figures.get("rss_mib"):
        rss = ", ".join(f"{name} {mib} MiB" for name, mib in figures["rss_mib"].items())
        lines += ["", f"RSS after the run: {rss}",
                  "ready after start: " + ", ".join(f"{name} {s} s" for name, s in figures["ready_s"].items())]
        logs = [f"{name} {figures['log_bytes'][name] / max(figures['requests_served'].get(name, 0), 1):.0f} B/request"
                for name in figures["log_bytes"]]
        lines.append("server log written: " + ", ".join(logs))
    lines.append(f"total benchmark time: {figures.get('total_s')} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="flowdeck serve against KServe's sklearn server and a bare floor.")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s per cell")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON on stdout (table on stderr)")
    parser.add_argument("--duration", type=int, help="seconds measured per cell (default 5; --quick 2)")
    parser.add_argument("--rounds", type=int,
                        help="repeat the whole matrix N times, median per cell (default 3; --quick 1)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to separate CPUs")
    parser.add_argument("--skip-kserve", action="store_true", help="flowdeck and the floor only")
    parser.add_argument("--skip-kserve-silent", action="store_true", help="only kserve with its stock logging")
    parser.add_argument("--cache-dir", default=os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"),
                                                            "flowdeck-bench"),
                        help="where the kserve venv is kept (default ~/.cache/flowdeck-bench)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (model, server logs)")
    parser.add_argument("--_floor", nargs=3, metavar=("MODEL_DIR", "NAME", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._floor:
        run_floor(args._floor[0], args._floor[1], int(args._floor[2]))
        return 0
    figures = measure(args)
    emit(report(figures), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
