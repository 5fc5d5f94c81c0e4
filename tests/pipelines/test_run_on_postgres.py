"""A whole pipeline run recorded in a real PostgreSQL store, then read back and served from its cache."""


from pathlib import Path
from typing import List

from kfp import dsl

from flowdeck.config import Settings
from flowdeck.pipelines.api import run_pipeline
from flowdeck.store import open_store


@dsl.component
def square(x: int) -> int:
    return x * x


@dsl.component
def total(values: List[int]) -> int:
    return sum(values)


@dsl.pipeline(name="squares-on-postgres")
def squares(n: int = 4) -> int:
    with dsl.ParallelFor([1, 2, 3]) as item:
        squared = square(x=item)
    return total(values=dsl.Collected(squared.output)).output


def test_run_is_recorded_in_postgres_and_cached(postgres_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    first = run_pipeline(squares, settings=settings)
    assert first["state"] == "SUCCEEDED"
    assert first["outputs"] == {"Output": 14}

    store = open_store(postgres_url)
    try:
        run = store.get_run(first["run_id"][:10])
        assert run.state == "SUCCEEDED" and run.outputs == {"Output": 14}
        tasks = store.list_tasks(run.id)
        assert sorted(t.path for t in tasks if t.name == "square") == [f"for-loop-2[{i}]/square" for i in range(3)]
        total_task = next(t for t in tasks if t.name == "total")
        assert total_task.inputs["parameters"]["values"] == [1, 4, 9]
    finally:
        store.close()

    second = run_pipeline(squares, settings=settings)
    assert second["outputs"] == {"Output": 14}
    executed = [t for t in second["tasks"] if t["name"] in ("square", "total")]
    assert executed and all(t["cached"] for t in executed)
