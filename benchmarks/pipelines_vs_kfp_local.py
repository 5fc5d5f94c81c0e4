"""flowdeck against kfp.local on the same KFP v2 pipelines, in one process tree.

    python benchmarks/pipelines_vs_kfp_local.py            # full run, ~3-5 min on 2 cores
    python benchmarks/pipelines_vs_kfp_local.py --quick    # smoke run, well under a minute
    python benchmarks/pipelines_vs_kfp_local.py --json     # the figures as one JSON document on stdout

Scenarios (the same compiled pipelines go to both runners):

1. Chains of N lightweight Python components, each adding one to the previous output. The per-task
   cost is the slope (t_long - t_short) / (long - short): interpreter start, imports, compiling the
   pipeline and starting the runner cancel out.
2. A W-wide `dsl.ParallelFor` whose outputs are fanned in with `dsl.Collected` into a sum. Reports wall
   time for both, and CPU utilisation (process-tree CPU seconds / wall seconds; 2.0 = both of two cores).
3. A 1,000-iteration ParallelFor, flowdeck only (kfp.local would need about a quarter of an hour; the
   estimate printed comes from its measured per-iteration time). flowdeck runs in a fresh subprocess
   so the peak RSS is its own; a 250-iteration run in another fresh subprocess shows whether memory
   grows with the iteration count.

kfp.local runs as `kfp.local.init(runner=SubprocessRunner(use_venv=False))`: each task still runs the
compiled `pip install kfp==<ver> --no-deps` (a no-op here, since that kfp is installed) and a fresh
interpreter. That is kfp.local's real behaviour, so it is kept. Its ParallelFor runs at most 2
iterations at a time (also its behaviour). flowdeck runs with its default settings in a throw-away
home and caching off.
"""

# No `from __future__ import annotations`: kfp reads the components' annotations as real types.
import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kfp import dsl
from reporting import describe_environment, emit, finish, progress, table

from flowdeck.pipelines.engine import Listener  # the type run_pipeline(listener=...) takes

IMAGE = "python:3.11"  # explicit, to silence kfp's FutureWarning; SubprocessRunner only checks it says "python"
TARGET_RATIO = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------ pipelines
@dsl.component(base_image=IMAGE)
def add_one(x: int) -> int:
    return x + 1


@dsl.component(base_image=IMAGE)
def sum_values(values: list) -> int:
    # int(): kfp.local hands the collected ints over as floats (a known kfp.local gap); flowdeck passes ints.
    return int(sum(values))


def make_chain(n: int) -> Callable[..., Any]:
    """0 -> add_one -> add_one -> ... (n tasks); the pipeline's output is n."""

    @dsl.pipeline(name=f"bench-chain-{n}")
    def chain() -> int:
        task = add_one(x=0)
        for _ in range(n - 1):
            task = add_one(x=task.output)
        return task.output

    return chain


def make_fanout(width: int) -> Callable[..., Any]:
    """ParallelFor over 0..width-1 adding one to each, fanned in: the output is width*(width+1)/2."""

    @dsl.pipeline(name=f"bench-fanout-{width}")
    def fanout() -> int:
        with dsl.ParallelFor(list(range(width))) as item:
            plus_one = add_one(x=item)
        return sum_values(values=dsl.Collected(plus_one.output)).output

    return fanout


def fanout_expected(width: int) -> int:
    return width * (width + 1) // 2


# -------------------------------------------------------------------------------------- measurement
def _cpu_tree() -> tuple[float, float]:
    """(CPU seconds of this process, CPU seconds of its reaped descendants), user+sys."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all processes, all users) from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def _proc_stat(pid: int | str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()  # fields from 3 (state) on; the name may hold spaces


def _proc_cpu(pid: int | str, children: bool = True) -> float:
    """utime+stime (+ cutime+cstime: its reaped children) of one process, in seconds (10 ms resolution)."""
    fields = _proc_stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime (fields 16, 17)
    return ticks / CLK_TCK


def _rss_kib(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _vmhwm_kib() -> int:
    """Peak RSS of this process's current address space (/proc/self/status VmHWM)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _fork_server_pid() -> int | None:
    """The flowdeck fork server: the child of this process running `flowdeck.runtime.forkserver`."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _proc_stat(entry)
        if fields is None or fields[1] != me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if b"flowdeck.runtime.forkserver" in handle.read():
                    return int(entry)
        except OSError:
            continue
    return None


class Measured:
    """Wall time, and the CPU time of this process tree over the block, from getrusage deltas.

    Exact only for descendants that have been reaped before the block ends: RUSAGE_CHILDREN grows when
    a child is waited for, by that child's own time plus that of every descendant it waited for.
    kfp.local waits for each task's `sh` (which waits for pip and python); flowdeck's
    `run_pipeline` closes its fork server and waits for it before returning, and the fork server
    waits for every task it forked, so both runners' whole trees are counted by the time the block ends.
    """

    def __init__(self) -> None:
        self.wall = self.cpu_self = self.cpu_children = self.machine_busy = 0.0

    @contextlib.contextmanager
    def measure(self) -> Iterator["Measured"]:
        self_0, kids_0 = _cpu_tree()
        busy_0 = _machine_busy()
        start = time.perf_counter()
        try:
            yield self
        finally:
            self.wall = time.perf_counter() - start
            self_1, kids_1 = _cpu_tree()
            self.cpu_self = self_1 - self_0
            self.cpu_children = kids_1 - kids_0
            self.machine_busy = _machine_busy() - busy_0

    @property
    def cpu(self) -> float:
        return self.cpu_self + self.cpu_children

    def as_dict(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall, 4), "cpu_self_s": round(self.cpu_self, 3),
            "cpu_children_s": round(self.cpu_children, 3), "cpu_tree_s": round(self.cpu, 3),
            "tree_cpu_per_wall": round(self.cpu / self.wall, 3) if self.wall else None,
            "machine_busy_cores": round(self.machine_busy / self.wall, 3) if self.wall else None,
        }


def _children_of(pid: int) -> list[int]:
    wanted = str(pid)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(entry)
            if fields is not None and fields[1] == wanted:
                found.append(int(entry))
    return found


class Window(Listener):
    """A flowdeck engine listener timing the execution of `count` tasks of one component.

    The window runs from the first of those tasks SUCCEEDED to the `count`-th: so it covers the
    work of the other `count - 1` tasks, and leaves out compiling, opening the store and starting
    the fork server (flowdeck starts it lazily, with the first task). A task is SUCCEEDED once the
    engine has had the fork server's `exited` report, which is sent after the fork server reaped it.
    CPU at each end = this process (all threads) + the fork server's own and reaped children's time
    + its live children's own time, read from /proc/<pid>/stat (10 ms ticks). It also samples RSS
    after given numbers of finished tasks.
    """

    def __init__(self, component: str, count: int, rss_marks: tuple[int, ...] = ()) -> None:
        self.component = component
        self.count = count
        self.rss_marks = set(rss_marks)
        self.done = 0
        self.server: int | None = None
        self.start: tuple[float, float] | None = None
        self.end: tuple[float, float] | None = None
        self.rss: list[dict[str, int]] = []

    def _snapshot(self) -> tuple[float, float]:
        assert self.server is not None
        cpu = _proc_cpu("self", children=False) + _proc_cpu(self.server)
        cpu += sum(_proc_cpu(child, children=False) for child in _children_of(self.server))
        return time.perf_counter(), cpu

    def task_changed(self, node: Any) -> None:
        if node.state != "SUCCEEDED" or getattr(node, "kind", None) != "container":
            return
        name = node.spec["componentRef"]["name"]  # kfp names each use of a component comp-x, comp-x-2, ...
        if name != self.component and not (name.startswith(self.component + "-") and name.rsplit("-", 1)[1].isdigit()):
            return
        self.done += 1
        if self.server is None:
            self.server = _fork_server_pid()
        if self.done in self.rss_marks:
            self.rss.append({"tasks_done": self.done, "engine_rss_kib": _rss_kib(),
                             "fork_server_rss_kib": _rss_kib(self.server) if self.server else 0})
        if self.server is None:
            return
        if self.done == 1:
            self.start = self._snapshot()
        elif self.done == self.count and self.start is not None:
            self.end = self._snapshot()

    def message(self, text: str) -> None:
        print(f"    flowdeck: {text}", file=sys.stderr)

    def as_dict(self) -> dict[str, Any]:
        if self.start is None or self.end is None:
            return {"error": "window not observed"}
        wall = self.end[0] - self.start[0]
        cpu = self.end[1] - self.start[1]
        return {"wall_s": round(wall, 4), "cpu_tree_s": round(cpu, 3),
                "tree_cpu_per_wall": round(cpu / wall, 3) if wall else None}


# ----------------------------------------------------------------------------------------- runners
@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send this process's fds 1 and 2 (and so kfp.local's task logs) to a file for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


class KfpLocal:
    def __init__(self, workdir: Path) -> None:
        from kfp import local

        self.log = workdir / "kfp-local.log"
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(workdir / "kfp-local-root"))

    def run(self, pipeline: Callable[..., Any]) -> tuple[Any, Measured]:
        measured = Measured()
        with _output_to(self.log), measured.measure():
            task = pipeline()
        return task.output, measured


class Flowdeck:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.count = 0

    def run(self, pipeline: Callable[..., Any], listener: Any = None) -> tuple[Any, Measured, dict[str, Any]]:
        import flowdeck
        from flowdeck.config import Settings

        self.count += 1
        settings = Settings(home=self.workdir / f"flowdeck-home-{self.count}")
        measured = Measured()
        with measured.measure():
            result = flowdeck.run_pipeline(pipeline, settings=settings, enable_caching=False, listener=listener)
        if result["state"] != "SUCCEEDED":
            raise AssertionError(f"flowdeck run {result['run_id']} ended {result['state']}: {result.get('error')}")
        return result["outputs"].get("Output"), measured, result


# ---------------------------------------------------------------------------------------- scenarios
ADD_ONE = "comp-add-one"




def _slope_ms(values: dict[int, float], short: int, long: int) -> float:
    return round((values[long] - values[short]) / (long - short) * 1000, 2)


def chain_scenario(kfp: KfpLocal | None, fd: Flowdeck, sizes: tuple[int, int], repeat: int) -> dict[str, Any]:
    short, long = sizes
    figures: dict[str, Any] = {"sizes": [short, long], "flowdeck_repeats": repeat}
    walls: dict[int, list[float]] = {short: [], long: []}
    executions: dict[int, list[float]] = {short: [], long: []}
    for _ in range(repeat):  # interleaved, so drifting background load hits both sizes alike
        for n in (short, long):
            window = Window(ADD_ONE, n)
            value, measured, result = fd.run(make_chain(n), listener=window)
            assert value == n, f"flowdeck chain-{n} returned {value!r}, want {n}"
            assert len(result["tasks"]) == n, f"flowdeck chain-{n} recorded {len(result['tasks'])} tasks"
            observed = window.as_dict()
            assert "wall_s" in observed, f"flowdeck chain-{n}: the listener saw {window.done} of {n} tasks end"
            walls[n].append(measured.wall)
            executions[n].append(observed["wall_s"])
            progress(f"  flowdeck  chain-{n:<4} {measured.wall:8.3f} s  output={value}")
    wall = {n: statistics.median(v) for n, v in walls.items()}
    execution = {n: statistics.median(v) for n, v in executions.items()}
    outside = {n: wall[n] - execution[n] for n in sizes}
    figures["flowdeck"] = {
        "wall_s": {str(n): round(wall[n], 4) for n in sizes},
        "wall_samples_s": {str(n): [round(v, 4) for v in walls[n]] for n in sizes},
        "per_task_ms": _slope_ms(wall, short, long),
        # from the first task's end to the last task's end: the engine and the tasks only
        "execution_s": {str(n): round(execution[n], 4) for n in sizes},
        "per_task_execution_ms": _slope_ms(execution, short, long),
        # everything else: compiling the pipeline, the store, the fork server start, the first task, the result
        "per_task_outside_execution_ms": _slope_ms(outside, short, long),
    }
    if kfp is not None:
        kfp_wall = {}
        for n in (short, long):
            value, measured = kfp.run(make_chain(n))
            assert value == n, f"kfp.local chain-{n} returned {value!r}, want {n}"
            kfp_wall[n] = measured.wall
            progress(f"  kfp.local chain-{n:<4} {measured.wall:8.3f} s  output={value}")
        figures["kfp_local"] = {"wall_s": {str(n): round(kfp_wall[n], 4) for n in sizes},
                                "per_task_ms": _slope_ms(kfp_wall, short, long)}
        fd_per_task = figures["flowdeck"]["per_task_ms"]
        figures["per_task_ratio"] = round(figures["kfp_local"]["per_task_ms"] / fd_per_task, 1) \
            if fd_per_task > 0 else None
        figures["wall_ratio"] = {str(n): round(kfp_wall[n] / wall[n], 1) for n in sizes}
    return figures


def fanout_scenario(kfp: KfpLocal | None, fd: Flowdeck, width: int) -> dict[str, Any]:
    expected = fanout_expected(width)
    figures: dict[str, Any] = {"width": width, "expected_sum": expected}
    window = Window(ADD_ONE, width)
    value, measured, result = fd.run(make_fanout(width), listener=window)
    assert value == expected, f"flowdeck fanout-{width} returned {value!r}, want {expected}"
    iterations = sum(1 for t in result["tasks"] if t["name"] == "add-one" and t["state"] == "SUCCEEDED")
    assert iterations == width, f"flowdeck fanout-{width}: {iterations} add-one tasks succeeded, want {width}"
    progress(f"  flowdeck  fanout-{width:<4} {measured.wall:8.3f} s  sum={value}")
    figures["flowdeck"] = {"whole_call": measured.as_dict(), "fanout_window": window.as_dict()}
    if kfp is not None:
        value, measured = kfp.run(make_fanout(width))
        assert value == expected, f"kfp.local fanout-{width} returned {value!r}, want {expected}"
        progress(f"  kfp.local fanout-{width:<4} {measured.wall:8.3f} s  sum={value}")
        figures["kfp_local"] = {"whole_call": measured.as_dict(), "per_iteration_s": round(measured.wall / width, 4)}
        figures["wall_ratio"] = round(measured.wall / figures["flowdeck"]["whole_call"]["wall_s"], 1)
    return figures


def big_fanout_worker(width: int, home: str) -> None:
    """Runs in a fresh interpreter: one flowdeck run of a `width`-wide fan-out; prints one JSON line."""
    import flowdeck
    from flowdeck.config import Settings
    from flowdeck.pipelines import api  # noqa: F401 - flowdeck imports its engine lazily; count it in the baseline

    pipeline = make_fanout(width)
    baseline_kib = _rss_kib()
    marks = tuple(sorted({max(1, width // 4), width // 2, 3 * width // 4, width}))
    window = Window(ADD_ONE, width, rss_marks=marks)
    start = time.perf_counter()
    result = flowdeck.run_pipeline(pipeline, settings=Settings(home=Path(home)), enable_caching=False,
                                   listener=window)
    wall = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "width": width, "state": result["state"], "error": result.get("error"),
        "output": result["outputs"].get("Output"), "tasks": len(result["tasks"]), "wall_s": round(wall, 3),
        "baseline_rss_kib": baseline_kib, "engine_peak_rss_kib": own.ru_maxrss, "engine_vmhwm_kib": _vmhwm_kib(),
        "cpu_tree_s": round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 3),
        "rss_samples": window.rss, "fanout_window": window.as_dict(),
    }))


def big_fanout_scenario(widths: tuple[int, ...], workdir: Path) -> list[dict[str, Any]]:
    runs = []
    for width in widths:
        home = workdir / f"flowdeck-big-{width}"
        # Through a small shell that forks it (no exec): a child forked from this big process would start with
        # this process's RSS as its ru_maxrss (Linux keeps the high-water mark across fork and exec).
        completed = subprocess.run(
            ["/bin/sh", "-c", '"$@"; exit $?', "sh",
             sys.executable, os.path.abspath(__file__), "--_worker-fanout", str(width), "--_home", str(home)],
            capture_output=True, text=True, check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"the {width}-wide worker failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
        figures = json.loads(completed.stdout.strip().splitlines()[-1])
        expected = fanout_expected(width)
        assert figures["state"] == "SUCCEEDED" and figures["output"] == expected, \
            f"{width}-wide fan-out: state {figures['state']} ({figures['error']}), output {figures['output']!r}, " \
            f"want {expected}"
        progress(f"  flowdeck  fanout-{width:<4} {figures['wall_s']:8.3f} s  sum={figures['output']}  "
                  f"engine peak RSS {figures['engine_peak_rss_kib'] / 1024:.1f} MiB")
        runs.append(figures)
    return runs


# ------------------------------------------------------------------------------------------- report
def _environment() -> dict[str, Any]:
    return describe_environment("kfp")


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"




def report(figures: dict[str, Any]) -> str:
    env = figures["environment"]
    lines = [
        "",
        f"flowdeck {env['flowdeck']} ({env['flowdeck_commit']}) vs kfp.local {env['kfp']} "
        f"(SubprocessRunner(use_venv=False)); Python {env['python']}, {env['cpus']} CPUs",
        f"load average (1/5/15 min) before: {figures['load_before']}, after: {figures['load_after']} "
        "(other work on the machine slows both runners)",
        "",
    ]
    chain, fan = figures["chains"], figures["fanout"]
    short, long = chain["sizes"]
    fd_chain, kfp_chain = chain["flowdeck"], chain.get("kfp_local")
    rows: list[tuple[str, str, str, str]] = [("scenario", "kfp.local", "flowdeck", "kfp/flowdeck")]
    for n in (short, long):
        rows.append((f"chain of {n}: wall", _s(kfp_chain["wall_s"][str(n)]) if kfp_chain else "-",
                     _s(fd_chain["wall_s"][str(n)]), _x(chain["wall_ratio"][str(n)]) if kfp_chain else "-"))
    rows.append((f"per task = ({long}-{short} wall slope)", _ms(kfp_chain["per_task_ms"]) if kfp_chain else "-",
                 _ms(fd_chain["per_task_ms"]), _x(chain.get("per_task_ratio"))))
    rows.append(("  of which task execution", "n/a", _ms(fd_chain["per_task_execution_ms"]), ""))
    rows.append(("  of which outside execution", "n/a", _ms(fd_chain["per_task_outside_execution_ms"]), ""))
    width = fan["width"]
    fd_fan, kfp_fan = fan["flowdeck"]["whole_call"], (fan.get("kfp_local") or {}).get("whole_call")
    rows.append((f"ParallelFor x{width} + Collected: wall", _s(kfp_fan["wall_s"]) if kfp_fan else "-",
                 _s(fd_fan["wall_s"]), _x(fan.get("wall_ratio"))))
    rows.append(("  tree CPU / wall, whole call", f"{kfp_fan['tree_cpu_per_wall']:.2f}" if kfp_fan else "-",
                 f"{fd_fan['tree_cpu_per_wall']:.2f}", ""))
    window = fan["flowdeck"]["fanout_window"]
    if "wall_s" in window:
        rows.append(("  tree CPU / wall, fan-out window", "n/a",
                     f"{window['tree_cpu_per_wall']:.2f} over {window['wall_s']:.3f} s", ""))
    rows.append(("  machine busy cores, whole call", f"{kfp_fan['machine_busy_cores']:.2f}" if kfp_fan else "-",
                 f"{fd_fan['machine_busy_cores']:.2f}", ""))
    estimates = figures.get("kfp_local_estimate_s") or {}
    for run in figures.get("big_fanout") or []:
        estimate = estimates.get(str(run["width"]))
        rows.append((f"ParallelFor x{run['width']} + Collected: wall",
                     f"~{estimate / 60:.0f} min (est.)" if estimate else "not run", _s(run["wall_s"]),
                     f"~{estimate / run['wall_s']:.0f}x (est.)" if estimate else ""))
        rows.append(("  flowdeck engine peak RSS", "", _mib(run["engine_peak_rss_kib"]), ""))
    lines += table(rows)
    lines.append("")
    if kfp_chain and chain.get("per_task_ratio") is not None:
        verdict = "met" if chain["per_task_ratio"] >= TARGET_RATIO else "NOT met"
        lines.append(f"Per-task cost: flowdeck {fd_chain['per_task_ms']:.1f} ms, "
                     f"kfp.local {kfp_chain['per_task_ms']:.1f} ms: {chain['per_task_ratio']:.1f}x smaller "
                     f"(target >= {TARGET_RATIO:.0f}x: {verdict}).")
    lines.append(f"  flowdeck: median of {chain['flowdeck_repeats']} runs per length; "
                 f"samples {fd_chain['wall_samples_s']}. "
                 "kfp.local: one run per length.")
    lines.append("  'task execution' is the slope of the time from the first task's end to the last task's end (engine "
                 "+ tasks); 'outside execution' is the rest of the slope: work before and after that grows with the "
                 "pipeline (compiling it with kfp, loading the compiled YAML, writing the task rows, the result).")
    big = figures.get("big_fanout") or []
    if big:
        lines.append("")
        lines.append("Memory in the flowdeck-only fan-outs (each a fresh interpreter; RSS in MiB; engine = the process "
                     "calling run_pipeline):")
        for run in big:
            samples = ", ".join(f"{s['tasks_done']}: {s['engine_rss_kib'] / 1024:.1f} / "
                                f"{s['fork_server_rss_kib'] / 1024:.1f}"
                                for s in run["rss_samples"])
            window = run["fanout_window"]
            utilisation = window.get("tree_cpu_per_wall", float("nan"))
            lines.append(f"  x{run['width']}: after imports {run['baseline_rss_kib'] / 1024:.1f}, peak "
                         f"{run['engine_peak_rss_kib'] / 1024:.1f} (ru_maxrss; VmHWM "
                         f"{run['engine_vmhwm_kib'] / 1024:.1f}); engine / fork server after N iterations: {samples}; "
                         f"tree CPU / wall in the fan-out window {utilisation:.2f} over "
                         f"{window.get('wall_s', float('nan')):.2f} s")
        if len(big) >= 2:
            small, large = big[0], big[-1]
            growth = (large["engine_peak_rss_kib"] - small["engine_peak_rss_kib"]) / 1024
            per_k = growth / (large["width"] - small["width"]) * 1000
            lines.append(f"  engine peak RSS x{small['width']} -> x{large['width']}: {growth:+.1f} MiB "
                         f"({per_k:+.1f} MiB per 1,000 iterations)")
        samples = big[-1]["rss_samples"]
        if len(samples) >= 2:
            first, last = samples[0], samples[-1]
            engine = (last["engine_rss_kib"] - first["engine_rss_kib"]) / 1024
            server = (last["fork_server_rss_kib"] - first["fork_server_rss_kib"]) / 1024
            lines.append(f"  within the x{big[-1]['width']} run, RSS after {first['tasks_done']} iterations -> after "
                         f"{last['tasks_done']}: engine {engine:+.1f} MiB, fork server {server:+.1f} MiB")
        if estimates:
            lines.append("  kfp.local is not run at these widths (it would take minutes to a quarter of an hour); "
                         f"its estimate is its measured per-iteration time in the x{width} fan-out times the width.")
    lines += [
        "",
        "How CPU utilisation is measured (CPU seconds of the process tree / wall seconds; 2.0 = both of 2 cores):",
        "  whole call: getrusage(RUSAGE_SELF) + getrusage(RUSAGE_CHILDREN) deltas around the call. RUSAGE_CHILDREN",
        "    only counts descendants that were reaped, but here that is all of them by the time the call returns:",
        "    kfp.local waits for each task's process, and flowdeck's run_pipeline waits for its fork server, which has",
        "    reaped every task it forked. For flowdeck this includes one-off, mostly single-threaded work",
        "    (compiling the pipeline, creating the SQLite store, starting the fork server and importing kfp in it).",
        "  fan-out window (flowdeck only): from the first iteration's end to the last one's, via an engine listener",
        "    and /proc/<pid>/stat (this process, the fork server with its reaped children, and its live children;",
        "    10 ms ticks). kfp.local offers no such hook, so only its whole call is shown.",
        "  machine busy cores: /proc/stat busy time of the whole machine over the call. It includes unrelated load,",
        "    so it is an upper bound that checks the tree figure is not inflated.",
        f"  kfp.local runs at most 2 ParallelFor iterations at once; flowdeck up to max_parallel_tasks "
        f"({figures['flowdeck_max_parallel']}) tasks.",
        f"kfp.local task logs: {figures.get('kfp_local_log', '-')}",
        f"total benchmark time: {figures.get('total_s')} s",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="flowdeck against kfp.local on the same KFP v2 pipelines.")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-run sizes: chains 5/20, fan-out 16, flowdeck-only fan-outs 50/200")
    parser.add_argument("--json", action="store_true",
                        help="print the figures as JSON on stdout (the table goes to stderr)")
    parser.add_argument("--chains", help="short,long chain lengths (default 20,100)")
    parser.add_argument("--width", type=int, help="fan-out width (default 64)")
    parser.add_argument("--big", help="flowdeck-only fan-out widths, comma separated (default 250,1000; 0 skips)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="flowdeck runs per chain length, median taken (default 3)")
    parser.add_argument("--skip-kfp-local", action="store_true", help="flowdeck figures only")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (homes, kfp.local outputs and log)")
    parser.add_argument("--_worker-fanout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--_home", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._worker_fanout:
        big_fanout_worker(args._worker_fanout, args._home)
        return 0

    chains: tuple[int, int] = (5, 20) if args.quick else (20, 100)
    if args.chains:
        short, _, long = args.chains.partition(",")
        chains = (int(short), int(long))
        if not 0 < chains[0] < chains[1]:
            parser.error("--chains takes two increasing lengths, e.g. 20,100")
    width = args.width or (16 if args.quick else 64)
    big_widths: tuple[int, ...] = (50, 200) if args.quick else (250, 1000)
    if args.big:
        big_widths = tuple(w for w in (int(v) for v in args.big.split(",")) if w > 0)

    from flowdeck.config import Settings

    workdir = Path(tempfile.mkdtemp(prefix="flowdeck-bench-"))
    figures: dict[str, Any] = {
        "environment": _environment(), "load_before": [round(v, 2) for v in os.getloadavg()],
        "flowdeck_max_parallel": Settings(home=workdir).max_parallel_tasks,
    }
    started = time.perf_counter()
    try:
        kfp = None if args.skip_kfp_local else KfpLocal(workdir)
        fd = Flowdeck(workdir)
        progress("warming up both runners (not measured)")
        fd.run(make_chain(2))
        if kfp is not None:
            kfp.run(make_chain(1))
        progress(f"chains of {chains[0]} and {chains[1]}")
        figures["chains"] = chain_scenario(kfp, fd, chains, max(1, args.repeat))
        progress(f"ParallelFor x{width} with Collected fan-in")
        figures["fanout"] = fanout_scenario(kfp, fd, width)
        if big_widths:
            progress(f"ParallelFor x{', x'.join(map(str, big_widths))}: flowdeck only, each in a fresh interpreter")
            figures["big_fanout"] = big_fanout_scenario(big_widths, workdir)
            if "kfp_local" in figures["fanout"]:
                per_iteration = figures["fanout"]["kfp_local"]["per_iteration_s"]
                figures["kfp_local_estimate_s"] = {str(w): round(per_iteration * w, 1) for w in big_widths}
    finally:
        finish(figures, started, workdir, args.keep)
        if not args.keep:
            figures["kfp_local_log"] = "(deleted with the working directory; keep it with --keep)"
        elif not args.skip_kfp_local:
            figures["kfp_local_log"] = str(workdir / "kfp-local.log")
    emit(report(figures), figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
