"""Small pipelines that tests across packages submit: written once, compiled by the real kfp SDK.

No `from __future__ import annotations` here: kfp reads the components' annotations at definition.
"""

from kfp import dsl


@dsl.component
def add(a: int, b: int) -> int:
    return a + b


@dsl.component
def nap(seconds: float):
    import time

    time.sleep(seconds)


@dsl.component
def fail_until_marker(marker: str) -> str:
    """Fails (creating `marker`) until `marker` exists: a run that fails, then succeeds when retried."""
    import os

    if not os.path.exists(marker):
        open(marker, "w").close()
        raise SystemExit("no marker yet: failing this time")
    return "ok"


@dsl.component
def count(marker_dir: str, name: str) -> str:
    """Appends one "x" to `<marker_dir>/<name>.count`: how often a task ran, visible after the run."""
    import os

    with open(os.path.join(marker_dir, name + ".count"), "a") as out:
        out.write("x")
    return name


@dsl.component
def wait_for_go(marker_dir: str, value: str) -> str:
    """Runs until `<marker_dir>/go` exists: a task that is RUNNING for as long as a test needs."""
    import os
    import time

    while not os.path.exists(os.path.join(marker_dir, "go")):
        time.sleep(0.05)
    return value + " went"


@dsl.pipeline
def adder(a: int = 1, b: int = 2) -> int:
    """Two tasks, `add` and `add-2`: (a + b) + 10."""
    first = add(a=a, b=b)
    return add(a=first.output, b=10).output


@dsl.pipeline
def sleeper(seconds: float = 120.0):
    nap(seconds=seconds)


@dsl.pipeline
def flaky(marker: str):
    fail_until_marker(marker=marker)


@dsl.pipeline
def gated(marker_dir: str) -> str:
    """count("first") -> wait_for_go -> count("last"): stop or kill the engine while the gate waits."""
    first = count(marker_dir=marker_dir, name="first")
    gate = wait_for_go(marker_dir=marker_dir, value=first.output)
    count(marker_dir=marker_dir, name="last").after(gate)
    return gate.output


@dsl.component
def evaluate(learning_rate: float, report: dsl.Output[dsl.HTML], notes: dsl.Output[dsl.Markdown],
             scores: dsl.Output[dsl.Metrics], classes: dsl.Output[dsl.ClassificationMetrics],
             predictions: dsl.Output[dsl.Dataset]):
    """Logs what the dashboard shows: scalar metrics, a confusion matrix and ROC curve, HTML, Markdown, a table."""
    accuracy = round(0.9 - abs(learning_rate - 0.1), 4)
    print(f"evaluating with learning_rate={learning_rate}: accuracy={accuracy}")
    scores.log_metric("accuracy", accuracy)
    scores.log_metric("loss", round(1 - accuracy, 4))
    classes.log_confusion_matrix(["cat", "dog", "bird"], [[8, 1, 1], [2, 7, 1], [0, 1, 9]])
    classes.log_roc_curve(fpr=[0.0, 0.1, 0.3, 1.0], tpr=[0.0, 0.6, 0.9, 1.0], threshold=[1.0, 0.7, 0.4, 0.0])
    with open(report.path, "w") as f:
        f.write(f"<h1>Report</h1><p>accuracy {accuracy}</p>")
    with open(notes.path, "w") as f:
        f.write(f"# Notes\n\n*learning rate* was `{learning_rate}`\n")
    with open(predictions.path, "w") as f:
        f.write("id,label,score\n" + "".join(f"{i},{'cat' if i % 2 else 'dog'},{i / 10}\n" for i in range(30)))


@dsl.component
def summarize(predictions: dsl.Input[dsl.Dataset]) -> int:
    with open(predictions.path) as f:
        return sum(1 for _ in f) - 1


@dsl.pipeline
def evaluation(learning_rate: float = 0.1) -> int:
    """evaluate -> summarize: a run with every kind of artifact the dashboard has a viewer for."""
    scored = evaluate(learning_rate=learning_rate)
    return summarize(predictions=scored.outputs["predictions"]).output
