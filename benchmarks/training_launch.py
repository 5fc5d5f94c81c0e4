"""Launch latency of a distributed training job: from `apply` to every rank inside `init_process_group`.

    python benchmarks/training_launch.py                 # 5 interleaved rounds: about a minute on 2 cores
    python benchmarks/training_launch.py --rounds 10     # more rounds
    python benchmarks/training_launch.py --json          # the figures as JSON on stdout; the report on stderr

The same script runs as 4 ranks (2 nodes × 2 processes, gloo on 127.0.0.1) two ways:

- **by hand**: two plain `torchrun --nnodes 2 --nproc-per-node 2 --node-rank i --master-addr 127.0.0.1
  --master-port P script` processes started at t0, as one would on one machine without an operator;
- **flowdeck**: t0 is just before the HTTP `POST /apis/flowdeck/v1/apply` of a TrainJob (`numNodes: 2`,
  `numProcPerNode: 2`, `command: [torchrun, script]`) to a running `flowdeck up`, exactly what
  `flowdeck apply -f` sends; the operator then admits the job, picks ports and starts both nodes.

Each rank writes `time.time()` right after `init_process_group` returns (then all-reduces a tensor to
check the group works); a round's figure is the latest of the 4 stamps minus t0. Both paths run
`python -m torch.distributed.run` in this interpreter (what `torchrun` is under flowdeck), so the
difference is what flowdeck adds: the API call, admission, the reconcile loop and the process launch.
Rounds alternate which path goes first; one warm-up of each is not counted. Reported: median and p90 of
each, the median difference, and PASS when flowdeck adds under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from reporting import describe_environment, emit, finish, progress, table

TARGET_S = 0.5
RANKS = 4
API = "/apis/flowdeck/v1"

SCRIPT = """
import json, os, sys, time
import torch
import torch.distributed as dist

dist.init_process_group("gloo")
inside = time.time()
total = torch.ones(1)
dist.all_reduce(total)
rank = dist.get_rank()
with open(os.path.join(sys.argv[1], f"rank-{rank}.json"), "w") as file:
    json.dump({"rank": rank, "t_init": inside, "world": int(total.item())}, file)
dist.destroy_process_group()
"""


class Server:
    """`flowdeck up --port 0` in a subprocess with its own home (as benchmarks/control_plane_load.py starts it)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.log = home / "server.log"
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k not in ("FLOWDECK_URL", "FLOWDECK_TOKEN")}
        env.update(FLOWDECK_HOME=str(self.home), PYTHONUNBUFFERED="1")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "flowdeck.cli.main", "up", "--port", "0"],
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "flowdeck is up at " in text:
                self.url = text.split("flowdeck is up at ", 1)[1].split()[0]
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"flowdeck up exited with {self.process.returncode}:\n{text[-3000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"flowdeck up did not announce its URL within {timeout:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _inside_at(out: Path, deadline: float) -> float:
    """The latest `init_process_group` stamp of the 4 ranks, once all have written theirs."""
    while time.monotonic() < deadline:
        stamps = list(out.glob("rank-*.json"))
        if len(stamps) == RANKS:
            try:
                found = [json.loads(path.read_text()) for path in stamps]
            except ValueError:  # a rank is still writing
                found = []
            if found:
                assert {rank["world"] for rank in found} == {RANKS}, found
                return max(rank["t_init"] for rank in found)
        time.sleep(0.01)
    raise RuntimeError(f"the ranks did not all report in {out}")


def by_hand(script: Path, out: Path, timeout: float) -> float:
    """Seconds from starting two `torchrun` node agents to the last rank inside init_process_group."""
    out.mkdir()
    port = _free_port()
    started = time.time()
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                                "--nproc-per-node", "2", "--node-rank", str(node), "--master-addr", "127.0.0.1",
                                "--master-port", str(port), str(script), str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for node in range(2)]
    inside = _inside_at(out, time.monotonic() + timeout)
    for agent in agents:
        if agent.wait(timeout=timeout) != 0:
            raise RuntimeError(f"torchrun exited with {agent.returncode}")
    return inside - started


def with_flowdeck(client: httpx.Client, name: str, script: Path, out: Path, timeout: float) -> tuple[float, float]:
    """(seconds from the apply to the last rank inside init_process_group, seconds the apply call took)."""
    out.mkdir()
    document = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"runtimeRef": {"name": "torch-distributed"},
                         "trainer": {"numNodes": 2, "numProcPerNode": 2,
                                     "command": ["torchrun", str(script)], "args": [str(out)]}}}
    started = time.time()
    client.post(f"{API}/apply", json={"items": [document]}).raise_for_status()
    applied = time.time() - started
    inside = _inside_at(out, time.monotonic() + timeout)
    path = f"{API}/namespaces/default/trainjobs/{name}"
    deadline = time.monotonic() + timeout
    while True:
        conditions = {c["type"]: c for c in client.get(path).json().get("status", {}).get("conditions", [])
                      if c["status"] == "True"}
        if "Complete" in conditions:
            break
        if "Failed" in conditions or time.monotonic() > deadline:
            raise RuntimeError(f"TrainJob {name} did not complete: {conditions}")
        time.sleep(0.05)
    client.delete(path).raise_for_status()
    return inside - started, applied


def _summary(samples: list[float]) -> dict[str, float]:
    p90 = statistics.quantiles(samples, n=10, method="inclusive")[8] if len(samples) > 1 else samples[0]
    return {"median_s": round(statistics.median(samples), 3), "p90_s": round(p90, 3), "min_s": round(min(samples), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds of each path (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a launch may take before failing")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (server log, stamps)")
    args = parser.parse_args()
    try:
        import torch  # noqa: F401 - the ranks need it; fail here with one line rather than in every rank
    except ImportError:
        sys.exit("this benchmark needs torch: pip install 'flowdeck[torch]'")

    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-training-launch-"))
    script = workdir / "rendezvous.py"
    script.write_text(SCRIPT)
    figures: dict[str, Any] = {"environment": describe_environment("torch"), "rounds": args.rounds,
                               "load_before": [round(v, 2) for v in os.getloadavg()]}
    server = Server(workdir / "home")
    progress("starting flowdeck up...")
    server.start()
    hand: list[float] = []
    flowdeck: list[float] = []
    applies: list[float] = []
    try:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            progress("warm-up (not counted)...")
            by_hand(script, workdir / "warm-hand", args.timeout)
            with_flowdeck(client, "warm-up", script, workdir / "warm-flowdeck", args.timeout)
            for number in range(args.rounds):
                order = ("hand", "flowdeck") if number % 2 == 0 else ("flowdeck", "hand")
                for path in order:
                    if path == "hand":
                        hand.append(by_hand(script, workdir / f"hand-{number}", args.timeout))
                    else:
                        took, applied = with_flowdeck(client, f"launch-{number}", script,
                                                      workdir / f"flowdeck-{number}", args.timeout)
                        flowdeck.append(took)
                        applies.append(applied)
                progress(f"round {number + 1}/{args.rounds}: by hand {hand[-1]:.3f} s, flowdeck {flowdeck[-1]:.3f} s")
    finally:
        server.stop()

    figures["by_hand"] = {**_summary(hand), "samples_s": [round(v, 3) for v in hand]}
    figures["flowdeck"] = {**_summary(flowdeck), "samples_s": [round(v, 3) for v in flowdeck],
                           "apply_call_median_s": round(statistics.median(applies), 3)}
    added = statistics.median(flowdeck) - statistics.median(hand)
    figures["added_median_s"] = round(added, 3)
    figures["pass"] = added < TARGET_S
    finish(figures, started, workdir, args.keep)

    rows = [("apply -> 4 ranks in init_process_group", "median s", "p90 s", "min s"),
            ("2 x torchrun --nnodes 2 --nproc-per-node 2, by hand",
             *(f"{figures['by_hand'][k]:.3f}" for k in ("median_s", "p90_s", "min_s"))),
            ("flowdeck TrainJob numNodes 2 x numProcPerNode 2",
             *(f"{figures['flowdeck'][k]:.3f}" for k in ("median_s", "p90_s", "min_s")))]
    env = figures["environment"]
    lines = [f"Training launch latency, {args.rounds} interleaved rounds (python {env['python']}, "
             f"torch {env['torch']}, "
             f"flowdeck {env['flowdeck']} {env['flowdeck_commit']}, {env['cpus']} CPUs, load before "
             f"{figures['load_before']}, after {figures['load_after']})", "", *table(rows), "",
             f"flowdeck's apply call itself: {figures['flowdeck']['apply_call_median_s']:.3f} s (median)",
             f"flowdeck adds {added:+.3f} s to the median launch (target: under {TARGET_S} s): "
             f"{'PASS' if figures['pass'] else 'FAIL'}"]
    emit("\n".join(lines), figures, args.json)
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
