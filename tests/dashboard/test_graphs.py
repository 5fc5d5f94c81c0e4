"""Sub-DAG and loop graphs on the run page, over real HTTP: a pipeline with a sub-pipeline and a ParallelFor
(run twice: with two items and with none), a run without tasks, and a pipeline without versions.

No `from __future__ import annotations` here: kfp reads the components' annotations at definition.
"""

import re
from datetime import datetime, timezone
from typing import Any, Dict, List

import httpx
import kfp
import pytest
from kfp import dsl
from sqlalchemy import insert

from flowdeck.store import RunRow, Store
from flowdeck.store.catalog import Pipelines


@dsl.component
def double(x: int) -> int:
    return 2 * x


@dsl.pipeline
def doubled(x: int) -> int:
    return double(x=x).output


@dsl.pipeline
def nested(items: List[int] = [1, 2]):  # noqa: B006 - kfp reads the default from the signature
    with dsl.ParallelFor(items) as item:
        double(x=item)
    doubled(x=3)


def finished(kfp_client: kfp.Client, items: List[int]) -> str:
    run = kfp_client.create_run_from_pipeline_func(nested, arguments={"items": items}, run_name=f"nested {items}")
    assert kfp_client.wait_for_run_completion(run.run_id, timeout=120).state == "SUCCEEDED"
    return run.run_id


@pytest.fixture(scope="module")
def two(kfp_client: kfp.Client) -> str:
    return finished(kfp_client, [1, 2])


@pytest.fixture(scope="module")
def none(kfp_client: kfp.Client) -> str:
    return finished(kfp_client, [])


def state(pages: httpx.Client, run_id: str) -> Dict[str, Any]:
    answer = pages.get(f"/runs/{run_id}/state")
    assert answer.status_code == 200, answer.text
    return answer.json()


def kinds(graph: Dict[str, Any]) -> Dict[str, str]:
    return {node["id"]: node["kind"] for node in graph["nodes"]}


def test_the_root_graph_shows_the_loop_and_the_sub_pipeline(pages: httpx.Client, two: str) -> None:
    page = pages.get(f"/runs/{two}").text
    graph = re.search(r'<script type="application/json" id="run-graph">(.*?)</script>', page, re.S)
    assert graph
    nodes = kinds(httpx.Response(200, content=graph.group(1)).json())
    loop = next(name for name, kind in nodes.items() if kind == "loop")
    assert nodes == {loop: "loop", "doubled": "dag"}


def test_sub_graphs_open_by_task_path(pages: httpx.Client, two: str) -> None:
    tasks = state(pages, two)["tasks"]
    loop = next(path for path in tasks if "/" not in path and path.startswith("for-loop"))
    assert {path for path in tasks if path.startswith(f"{loop}[")} >= {f"{loop}[0]/double", f"{loop}[1]/double"}
    assert tasks["doubled/double"] == "SUCCEEDED"
    sub = pages.get(f"/runs/{two}/graph", params={"path": "doubled"})
    assert sub.status_code == 200 and kinds(sub.json()) == {"double": "container"}
    for path in (loop, f"{loop}[1]"):  # the loop's body: one graph for every iteration
        body = pages.get(f"/runs/{two}/graph", params={"path": path})
        assert body.status_code == 200 and kinds(body.json()) == {"double": "container"}, path
    for path in ("doubled/double", "nope", f"{loop}[0]/double"):
        missing = pages.get(f"/runs/{two}/graph", params={"path": path})
        assert missing.status_code == 404 and missing.json() == {"message": f"no sub-DAG {path!r} in this pipeline"}
    too_long = pages.get(f"/runs/{two}/graph", params={"path": "x" * 2049})
    assert too_long.status_code == 400 and "path is too long" in too_long.text


def test_a_loop_task_panel_offers_its_iterations(pages: httpx.Client, two: str) -> None:
    found = state(pages, two)
    loop = next(path for path in found["tasks"] if path.startswith("for-loop") and "/" not in path)
    panel = pages.get(f"/runs/{two}/tasks/{found['task_ids'][loop]}").text
    assert f'data-open-loop="{loop}"' in panel and "2 iterations" in panel
    sub = pages.get(f"/runs/{two}/tasks/{found['task_ids']['doubled']}").text
    assert 'data-open-graph="doubled"' in sub


def test_a_finished_loop_without_items_says_so_not_yet(pages: httpx.Client, none: str) -> None:
    found = state(pages, none)
    loop = next(path for path in found["tasks"] if path.startswith("for-loop") and "/" not in path)
    assert found["tasks"][loop] in ("SUCCEEDED", "SKIPPED")
    panel = pages.get(f"/runs/{none}/tasks/{found['task_ids'][loop]}").text
    assert "No iterations yet." not in panel and "data-open-loop" not in panel
    assert "No iterations" in panel


def test_a_run_without_tasks_has_an_empty_graph(pages: httpx.Client, store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(insert(RunRow), [{"id": "no-tasks", "pipeline_name": "empty", "display_name": "no tasks",
                                       "state": "PENDING", "pipeline_spec": {}, "origin": "server",
                                       "created_at": datetime(2026, 3, 1, tzinfo=timezone.utc)}])
    page = pages.get("/runs/no-tasks")
    assert page.status_code == 200 and "no tasks" in page.text
    assert '<span id="task-count">0</span>' in page.text
    assert state(pages, "no-tasks") == {
        "state": "PENDING", "finished": False, "tasks": {}, "task_ids": {}, "cached": [],
        "facts": {"state": "PENDING", "started": "", "finished": "", "duration": "", "error": ""}}
    assert pages.get("/runs/no-tasks/graph", params={"path": "x"}).status_code == 404


def test_a_pipeline_without_versions_says_so(pages: httpx.Client, store: Store) -> None:
    pipeline = Pipelines(store).create(name="versionless")[0].id
    page = pages.get(f"/pipelines/{pipeline}")
    assert page.status_code == 200 and "This pipeline has no versions yet." in page.text
    assert 'data-graph="graph-json"' not in page.text
    listing = pages.get("/pipelines", params={"q": "versionless"}).text
    row = listing[listing.index(f'id="pipeline-{pipeline}"'):]
    assert '<td class="num">0</td>' in row[:row.index("</tr>")]
