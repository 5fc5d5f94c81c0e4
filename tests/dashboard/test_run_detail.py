"""The run-detail page over real HTTP: the DAG and its states, the task panel, attempt logs, terminate.

A finished `evaluation` run (fixture `evaluated`) is what most tests look at; a `sleeper` run is the
running run whose Terminate button (the KFP API's :terminate) cancels it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import kfp
import pytest
from markupsafe import escape

from helpers import ControlPlane, wait_for
from sample_pipelines import adder, sleeper


def embedded(page: str, element_id: str) -> Any:
    """The JSON a page embeds for its scripts in <script type="application/json" id=...>."""
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert found, f"no JSON block {element_id!r} in the page"
    return json.loads(found.group(1))


def button(page: str, element_id: str) -> str:
    found = re.search(rf'<button[^>]*id="{element_id}"[^>]*>', page, re.S)
    assert found, f"no button {element_id!r} in the page"
    return found.group(0)


def task_ids(kfp_client: kfp.Client, run_id: str) -> dict[str, str]:
    """{display name: task id} of a run, as the KFP API reports them."""
    details = kfp_client.get_run(run_id).run_details.task_details
    return {task.display_name: task.task_id for task in details}


@pytest.fixture(scope="module")
def sleeping(kfp_client: kfp.Client, pages: httpx.Client) -> Iterator[str]:
    """A `sleeper` run whose only task is RUNNING (terminated by the end of the module)."""
    run = kfp_client.create_run_from_pipeline_func(sleeper, arguments={"seconds": 120}, run_name="sleeping")
    state = f"/runs/{run.run_id}/state"
    assert wait_for(lambda: pages.get(state).json()["tasks"].get("nap") == "RUNNING", timeout=30)
    yield run.run_id
    kfp_client.terminate_run(run.run_id)


def test_page_shows_the_runs_tasks_and_their_states(pages: httpx.Client, evaluated: str) -> None:
    answer = pages.get(f"/runs/{evaluated}")
    assert answer.status_code == 200
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page = answer.text
    assert "evaluation 0.1" in page and 'class="state-badge state-SUCCEEDED"' in page
    assert embedded(page, "run-root-states") == {"evaluate": "SUCCEEDED", "summarize": "SUCCEEDED"}
    for task in ("evaluate", "summarize"):  # the task table, a list beside the graph
        assert re.search(rf'<tr data-path="{task}">.*?<span class="state state-SUCCEEDED">SUCCEEDED</span>', page, re.S)
    assert '<div id="run-dag" class="dag" data-graph="run-graph"' in page
    assert "/static/vendor/dagre.min.js" in page and "/static/graph.js" in page
    assert 'id="terminate"' in page and 'id="retry"' in page  # the single-user visitor may write...
    assert " hidden" in button(page, "terminate") and " hidden" in button(page, "retry")  # ...but not here


def test_graph_follows_the_pipeline_spec(pages: httpx.Client, evaluated: str, kfp_client: kfp.Client) -> None:
    graph = embedded(pages.get(f"/runs/{evaluated}").text, "run-graph")
    tasks = kfp_client.get_run(evaluated).pipeline_spec["root"]["dag"]["tasks"]
    assert sorted((node["id"], node["kind"], node["component"]) for node in graph["nodes"]) == sorted(
        (name, "container", task["componentRef"]["name"]) for name, task in tasks.items())
    assert {node["id"] for node in graph["nodes"]} == {"evaluate", "summarize"}
    assert graph["edges"] == [["evaluate", "summarize"]]
    missing = pages.get(f"/runs/{evaluated}/graph", params={"path": "evaluate"})
    assert missing.status_code == 404 and missing.json() == {"message": "no sub-DAG 'evaluate' in this pipeline"}


def test_state_route_reports_every_task(pages: httpx.Client, evaluated: str, kfp_client: kfp.Client) -> None:
    state = pages.get(f"/runs/{evaluated}/state").json()
    assert state["state"] == "SUCCEEDED" and state["finished"] is True
    assert state["tasks"] == {"evaluate": "SUCCEEDED", "summarize": "SUCCEEDED"}
    ids = task_ids(kfp_client, evaluated)
    assert state["task_ids"] == {"evaluate": ids["evaluate"], "summarize": ids["summarize"]}
    assert state["facts"]["finished"] and state["facts"]["duration"]


def test_task_panel_links_outputs_and_lists_attempts(pages: httpx.Client, evaluated: str,
                                                     kfp_client: kfp.Client) -> None:
    details = {t.display_name: t for t in kfp_client.get_run(evaluated).run_details.task_details}
    evaluate = details["evaluate"]
    answer = pages.get(f"/runs/{evaluated}/tasks/{evaluate.task_id}")
    assert answer.status_code == 200
    panel = answer.text
    assert "<html" not in panel  # a fragment for the side panel
    for key in ("scores", "classes", "report", "notes", "predictions"):
        artifact_id = evaluate.outputs[key].artifact_ids[0]
        assert f'<a class="artifact" href="/artifacts/{artifact_id}">{key}</a>' in panel
    assert "system.ClassificationMetrics" in panel and "not cached" in panel
    assert re.search(r"<tr><td>learning_rate</td><td><code>0\.1</code></td></tr>", panel)
    attempt = re.search(r"<tr><td>1</td><td>.*?SUCCEEDED.*?</td>\s*<td>0</td>", panel, re.S)
    assert attempt, "attempt 1 with exit code 0"
    assert f'data-log="/runs/{evaluated}/tasks/{evaluate.task_id}/logs?attempt=1"' in panel
    summary = pages.get(f"/runs/{evaluated}/tasks/{details['summarize'].task_id}").text
    assert re.search(r"<tr><td>Output</td><td><code>30</code></td></tr>", summary)
    predictions = evaluate.outputs["predictions"].artifact_ids[0]
    assert f'<a href="/artifacts/{predictions}">predictions</a>' in summary  # its input


def test_logs_route_returns_the_attempts_output(pages: httpx.Client, evaluated: str, kfp_client: kfp.Client) -> None:
    evaluate = task_ids(kfp_client, evaluated)["evaluate"]
    answer = pages.get(f"/runs/{evaluated}/tasks/{evaluate}/logs", params={"attempt": 1})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "evaluating with learning_rate=0.1: accuracy=0.9" in answer.text
    assert "accuracy=" in pages.get(f"/runs/{evaluated}/tasks/{evaluate}/logs").text  # every attempt
    other = pages.get(f"/runs/{evaluated}/tasks/{evaluate}/logs", params={"attempt": 2})
    assert other.status_code == 404 and other.text == "task 'evaluate' has no log for attempt 2\n"


def test_missing_run_and_foreign_task_are_not_found(pages: httpx.Client, evaluated: str, sleeping: str,
                                                    kfp_client: kfp.Client) -> None:
    for path in ("/runs/nope", "/runs/nope/state", "/runs/nope/graph", "/runs/nope/tasks/x", "/runs/nope/tasks/x/logs"):
        answer = pages.get(path)
        assert answer.status_code == 404, path
        assert "run &#39;nope&#39; not found" in answer.text, path
    foreign = task_ids(kfp_client, sleeping)["nap"]
    for path in (f"/runs/{evaluated}/tasks/{foreign}", f"/runs/{evaluated}/tasks/{foreign}/logs"):
        answer = pages.get(path)
        assert answer.status_code == 404, path
        assert f"task &#39;{foreign}&#39; not found in run &#39;{evaluated}&#39;" in answer.text
    assert pages.get(f"/runs/{sleeping}/tasks/{foreign}").status_code == 200


def test_hostile_run_name_is_escaped(pages: httpx.Client, kfp_client: kfp.Client) -> None:
    name = '<script>alert("run")</script><img src=x onerror=alert(1)>'
    run = kfp_client.create_run_from_pipeline_func(adder, arguments={"a": 1, "b": 2}, run_name=name)
    page = pages.get(f"/runs/{run.run_id}").text
    assert name not in page and "<img src=x" not in page
    assert f"<h1>{escape(name)}</h1>" in page
    assert f"<title>{escape(name)} · flowdeck</title>" in page


def test_terminate_button_cancels_a_running_run(pages: httpx.Client, dashboard: ControlPlane, sleeping: str) -> None:
    page = pages.get(f"/runs/{sleeping}").text
    terminate = button(page, "terminate")
    assert " hidden" not in terminate and " hidden" in button(page, "retry")
    assert embedded(page, "run-root-states") == {"nap": "RUNNING"}
    url = re.search(r'data-url="([^"]+)"', terminate).group(1)
    assert url == f"/apis/v2beta1/runs/{sleeping}:terminate"
    assert httpx.post(dashboard.url + url).status_code == 200  # what static/dashboard.js does
    assert wait_for(lambda: pages.get(f"/runs/{sleeping}/state").json()["state"] == "CANCELED", timeout=20)
    state = pages.get(f"/runs/{sleeping}/state").json()
    assert state["tasks"] == {"nap": "CANCELED"} and state["finished"] is True
    page = pages.get(f"/runs/{sleeping}").text
    assert " hidden" in button(page, "terminate") and " hidden" not in button(page, "retry")


def test_a_nul_byte_in_a_page_parameter_is_a_400_page(pages: httpx.Client) -> None:
    for url in ("/runs/abc%00def", "/runs?q=a%00b", "/artifacts/x%00y", "/compare?runs=a%00"):
        answer = pages.get(url)
        assert answer.status_code == 400, url
        assert answer.headers["content-type"].startswith("text/html") and "NUL byte" in answer.text, url


def test_logs_tail_sends_the_end_of_a_log_from_a_line_start(pages: httpx.Client, evaluated: str,
                                                            kfp_client: kfp.Client) -> None:
    logs = f"/runs/{evaluated}/tasks/{task_ids(kfp_client, evaluated)['evaluate']}/logs"
    whole = pages.get(logs, params={"attempt": 1}).content
    assert whole.count(b"\n") > 2
    tail = pages.get(logs, params={"attempt": 1, "tail": len(whole) - 3})  # the first line is cut off whole
    assert tail.status_code == 200 and tail.headers["content-type"].startswith("text/plain")
    assert tail.content == whole[whole.index(b"\n") + 1:]
    assert int(tail.headers["x-log-omitted"]) == whole.index(b"\n") + 1
    short = pages.get(logs, params={"attempt": 1, "tail": 1 << 20})  # a short log comes whole
    assert short.content == whole and "x-log-omitted" not in short.headers
    alone = pages.get(logs, params={"tail": 40})
    assert alone.status_code == 400 and "tail: needs attempt" in alone.text


def test_page_parameters_failing_validation_are_400_pages(pages: httpx.Client, evaluated: str,
                                                           kfp_client: kfp.Client) -> None:
    logs = f"/runs/{evaluated}/tasks/{task_ids(kfp_client, evaluated)['evaluate']}/logs"
    for url, words in ((f"/pipelines?q={'x' * 513}", "q is too long: 513 characters, at most 512"),
                       (f"/experiments?q={'x' * 513}", "q is too long"),
                       (f"/runs?ns={'n' * 64}", "ns is too long: 64 characters, at most 63"),
                       (f"/runs/{evaluated}?ns={'n' * 64}", "ns is too long"),
                       (f"{logs}?attempt=abc", "query parameter attempt: Input should be a valid integer"),
                       (f"{logs}?attempt=0", "query parameter attempt: Input should be greater than or equal to 1"),
                       (f"{logs}?attempt=1&tail=x", "query parameter tail: Input should be a valid integer")):
        answer = pages.get(url)
        assert answer.status_code == 400, url
        assert answer.headers["content-type"].startswith("text/html"), url
        assert "script-src 'self'" in answer.headers["content-security-policy"], url
        assert f'<p class="error" role="alert">{escape(words)}' in answer.text, (url, answer.text)
