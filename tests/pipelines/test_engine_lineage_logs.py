"""Engine behaviour: artifact lineage in the store, and task logs kept per attempt."""

from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from flowdeck.store import open_store

IMAGE = "python:3.11"


@dsl.component(base_image=IMAGE)
def produce(text: str, out: Output[Dataset]):
    print(f"producing {text!r}")
    with open(out.path, "w") as handle:
        handle.write(text)


@dsl.component(base_image=IMAGE)
def consume(data: Input[Dataset]) -> str:
    with open(data.path) as handle:
        text = handle.read()
    print(f"consumed {text!r}")
    return text


@dsl.pipeline
def chain(text: str = "payload") -> str:
    produced = produce(text=text)
    return consume(data=produced.outputs["out"]).output


class StoreView:
    def __init__(self, settings, run_id: str) -> None:
        self.store = open_store(settings.resolved_database_url)
        self.rows = {t.path: t for t in self.store.list_tasks(run_id)}

    def lineage(self, path: str) -> list[tuple[str, str, Any]]:
        return self.store.lineage(self.rows[path].id)

    def attempts(self, path: str) -> list[Any]:
        return list(self.store.list_attempts([self.rows[path].id]))

    def close(self) -> None:
        self.store.close()


def view(settings, result: dict[str, Any]) -> StoreView:
    assert result["state"] == "SUCCEEDED", result["error"]
    return StoreView(settings, result["run_id"])


# -------------------------------------------------------------------------------------------- lineage


def test_consumer_has_an_input_event_for_the_producers_output_artifact(run, settings) -> None:
    store = view(settings, run(chain))
    try:
        produced = store.lineage("produce")
        consumed = store.lineage("consume")
    finally:
        store.close()

    assert [(kind, key) for kind, key, _ in produced] == [("OUTPUT", "out")]
    assert [(kind, key) for kind, key, _ in consumed] == [("INPUT", "data")]
    assert consumed[0][2].id == produced[0][2].id


def test_lineage_artifact_carries_uri_and_type(run, settings) -> None:
    store = view(settings, run(chain, {"text": "abc"}))
    try:
        (_, _, artifact), = store.lineage("produce")
    finally:
        store.close()

    assert artifact.schema_title == "system.Dataset"
    assert Path(artifact.uri).read_text() == "abc"


def test_cached_producer_points_at_the_original_artifact(run, settings) -> None:
    first = view(settings, run(chain))
    second = view(settings, run(chain))
    try:
        original = first.lineage("produce")[0][2]
        reused = second.lineage("produce")
        consumed = second.lineage("consume")
    finally:
        first.close()
        second.close()

    assert second.rows["produce"].cached
    assert [(k, key, a.id) for k, key, a in reused] == [("OUTPUT", "out", original.id)]
    assert [(k, a.id) for k, _, a in consumed] == [("INPUT", original.id)]


@dsl.component(base_image=IMAGE)
def gather(parts: Input[list[Dataset]]) -> int:
    return len(parts)


@dsl.pipeline
def fan_in() -> int:
    with dsl.ParallelFor(["a", "b", "c"]) as text:
        produced = produce(text=text)
    return gather(parts=dsl.Collected(produced.outputs["out"])).output


def test_fan_in_consumer_has_an_input_event_per_collected_artifact_in_order(run, settings) -> None:
    store = view(settings, run(fan_in))
    try:
        producers = sorted(p for p, row in store.rows.items() if row.name == "produce")
        produced_ids = [store.lineage(p)[0][2].id for p in producers]
        consumed = store.lineage("gather")
    finally:
        store.close()

    assert [(kind, key) for kind, key, _ in consumed] == [("INPUT", "parts")] * 3
    assert [a.id for _, _, a in consumed] == produced_ids


@dsl.pipeline
def imported(uri: str) -> str:
    source = dsl.importer(artifact_uri=uri, artifact_class=Dataset)
    return consume(data=source.output).output


def test_imported_artifact_links_importer_and_consumer(run, settings, tmp_path: Path) -> None:
    source = tmp_path / "source.txt"
    source.write_text("from disk")

    store = view(settings, run(imported, {"uri": str(source)}))
    try:
        produced = store.lineage("importer")
        consumed = store.lineage("consume")
    finally:
        store.close()

    assert [(kind, key) for kind, key, _ in produced] == [("OUTPUT", "artifact")]
    assert consumed[0][0] == "INPUT" and consumed[0][2].id == produced[0][2].id
    assert Path(produced[0][2].uri) == source


# ----------------------------------------------------------------------------------------------- logs


def test_print_output_is_in_the_attempt_log(run, settings) -> None:
    store = view(settings, run(chain, {"text": "visible"}))
    try:
        (attempt,) = store.attempts("consume")
    finally:
        store.close()

    assert attempt.number == 1 and attempt.state == "SUCCEEDED" and attempt.exit_code == 0
    assert "consumed 'visible'" in Path(attempt.log_path).read_text()


def test_each_task_has_its_own_log(run, settings) -> None:
    store = view(settings, run(chain, {"text": "mine"}))
    try:
        producer_log = Path(store.attempts("produce")[0].log_path).read_text()
        consumer_log = Path(store.attempts("consume")[0].log_path).read_text()
    finally:
        store.close()

    assert "producing 'mine'" in producer_log and "consumed" not in producer_log
    assert "consumed 'mine'" in consumer_log and "producing" not in consumer_log


def test_logs_live_under_the_logs_directory(run, settings) -> None:
    store = view(settings, run(chain))
    try:
        log_path = Path(store.attempts("produce")[0].log_path)
    finally:
        store.close()

    assert log_path.is_file()
    assert log_path.resolve().is_relative_to(settings.logs_dir.resolve())


@dsl.component(base_image=IMAGE)
def chatty(lines: int):
    import sys

    for i in range(lines):
        print(f"stdout line {i}")
    print("to stderr", file=sys.stderr)


@dsl.pipeline
def chatty_pipeline(lines: int = 200):
    chatty(lines=lines)


def test_stdout_and_stderr_are_both_captured_completely(run, settings) -> None:
    store = view(settings, run(chatty_pipeline))
    try:
        text = Path(store.attempts("chatty")[0].log_path).read_text()
    finally:
        store.close()

    assert "stdout line 0" in text and "stdout line 199" in text
    assert "to stderr" in text
