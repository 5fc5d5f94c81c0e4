"""How fast a tuning experiment runs its trials: `KatibClient.tune()` against a running `flowdeck up`.

    python benchmarks/tuning_trials.py                 # 20 trials of a trivial objective, 4 in parallel: ~30 s
    python benchmarks/tuning_trials.py --trials 50     # more trials; --json for the figures

The same objective (`score = -(x - 2)^2`, printed as Katib's `score=...` line) is tuned two ways, with the
same optuna TPE sampler and the same number of trials in parallel:

- **flowdeck**: `KatibClient(url).tune(...)` creates an Experiment; the figure is the time from the call to
  the experiment's Succeeded condition, as `wait_for_experiment_condition` sees it.
- **by hand, a process per trial** (the peer): the pattern Katib users fall back to without a cluster,
  and what Katib itself does (a pod per trial, here only its process): an optuna study in this process
  asks for parameters, runs each trial as a fresh `python` process reading them from its command line,
  parses the printed metric and tells the study. No API, no controller, no store.

Katib itself cannot run here (it needs a Kubernetes cluster: a pod, a metrics-collector sidecar and a
suggestion service per experiment; its suggestion calls time out after 60 s). The acceptance target is
20 trials under 5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from control_plane_load import Server
from reporting import describe_environment, emit, finish, progress, table

TARGET_S = 5.0
TRIAL = "import sys; x = float(sys.argv[1]); print(f'score={-(x - 2) ** 2:.6f}')"


def objective(parameters):
    x = float(parameters["x"])
    print(f"score={-(x - 2) ** 2:.6f}")


def with_flowdeck(url: str, name: str, trials: int, parallel: int) -> float:
    from flowdeck.tuning import KatibClient, search

    client = KatibClient(url=url)
    started = time.perf_counter()
    client.tune(name, objective=objective, parameters={"x": search.double(-5, 5)}, objective_metric_name="score",
                algorithm_name="tpe", max_trial_count=trials, parallel_trial_count=parallel)
    client.wait_for_experiment_condition(name, timeout=300, polling_interval=0.05)
    took = time.perf_counter() - started
    assert len(client.list_trials(name)) == trials
    client.delete_experiment(name)
    return took


def by_hand(trials: int, parallel: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler())
    started = time.perf_counter()

    def run(trial: optuna.Trial) -> tuple[optuna.Trial, float]:
        x = trial.suggest_float("x", -5, 5)
        output = subprocess.run([sys.executable, "-c", TRIAL, str(x)], capture_output=True, text=True, check=True)
        return trial, float(output.stdout.split("score=")[1])

    with ThreadPoolExecutor(parallel) as pool:
        remaining = trials
        while remaining:
            batch = [study.ask() for _ in range(min(parallel, remaining))]
            for trial, value in pool.map(run, batch):
                study.tell(trial, value)
            remaining -= len(batch)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per experiment (default 20)")
    parser.add_argument("--parallel", type=int, default=4, help="trials at once (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="experiments of each kind (default 3)")
    parser.add_argument("--json", action="store_true", help="the figures as JSON on stdout")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-tuning-"))
    figures: dict[str, Any] = {"environment": describe_environment("optuna"), "trials": args.trials,
                               "parallel": args.parallel, "load_before": [round(v, 2) for v in os.getloadavg()]}
    server = Server(workdir / "home", f"sqlite:///{workdir / 'home' / 'flowdeck.db'}")
    progress("starting flowdeck up...")
    server.start()
    samples: dict[str, list[float]] = {"flowdeck": [], "by_hand": []}
    try:
        progress("warm-up (not counted)...")
        with_flowdeck(server.url, "warm-up", 2, 2)
        for number in range(args.rounds):
            samples["flowdeck"].append(with_flowdeck(server.url, f"round-{number}", args.trials, args.parallel))
            samples["by_hand"].append(by_hand(args.trials, args.parallel))
            progress(f"round {number + 1}/{args.rounds}: flowdeck {samples['flowdeck'][-1]:.2f} s, "
                     f"by hand {samples['by_hand'][-1]:.2f} s")
    finally:
        server.stop()
    for name, values in samples.items():
        figures[name] = {"median_s": round(statistics.median(values), 3), "samples_s": [round(v, 3) for v in values]}
    ratio = figures["by_hand"]["median_s"] / figures["flowdeck"]["median_s"]
    figures["ratio"] = round(ratio, 2)
    figures["pass"] = figures["flowdeck"]["median_s"] < TARGET_S
    finish(figures, started, workdir, args.keep)
    env = figures["environment"]
    rows = [(f"{args.trials} trials, {args.parallel} in parallel (TPE)", "median s", "rounds"),
            ("flowdeck: KatibClient.tune() -> Experiment Succeeded", f"{figures['flowdeck']['median_s']:.2f}",
             " ".join(f"{v:.2f}" for v in samples["flowdeck"])),
            ("by hand: optuna + a python process per trial", f"{figures['by_hand']['median_s']:.2f}",
             " ".join(f"{v:.2f}" for v in samples["by_hand"]))]
    lines = [f"Tuning trials (python {env['python']}, optuna {env['optuna']}, flowdeck {env['flowdeck']} "
             f"{env['flowdeck_commit']}, {env['cpus']} CPUs, load before {figures['load_before']}, after "
             f"{figures['load_after']})", "", *table(rows), "",
             f"flowdeck is {ratio:.1f}x faster than a process per trial; target {args.trials} trials under "
             f"{TARGET_S:g} s: {'PASS' if figures['pass'] else 'FAIL'}"]
    emit("\n".join(lines), figures, args.json)
    return 0 if figures["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
