"""The dashboard's lists and comparison, over HTTP against a real `flowdeck up`.

Runs for list, filter and paging tests are written straight into the server's database (no
execution needed: the pages read rows); the comparison and the pipeline page use real runs and a
real upload through kfp.Client.
"""

import html
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import kfp
import pytest
from kfp import compiler
from sqlalchemy import insert

from flowdeck.store import RunRow, Store
from flowdeck.store.catalog import Experiments, Pipelines
from flowdeck.store.models import ArtifactRow, EventRow, TaskRow
from sample_pipelines import evaluation

START = datetime(2026, 3, 1, tzinfo=timezone.utc)
SPEC = {"pipelineInfo": {"name": "listed"}, "root": {"dag": {"tasks": {}}}}
HOSTILE = "<script>alert('x')</script>\"&"


@pytest.fixture(scope="module")
def listed(store: Store) -> dict[str, str]:
    """130 runs in two profiles and two experiments (`alpha` in default, `beta` in team-a), one a minute."""
    experiments = Experiments(store)
    alpha = experiments.create(display_name="alpha").id
    beta = experiments.create(display_name="beta", namespace="team-a").id
    rows = []
    for i in range(130):
        team = i % 3 == 0
        state = "RUNNING" if i % 7 == 0 else "FAILED" if i % 4 == 1 else "SUCCEEDED"
        created = START + timedelta(minutes=i)
        finished = None if state == "RUNNING" else created + timedelta(seconds=75)
        rows.append({"id": f"list-{i:04d}", "pipeline_name": "listed", "display_name": f"listed run {i}",
                     "state": state, "pipeline_spec": SPEC, "arguments": {"i": i, "source": "listed"},
                     "created_at": created, "started_at": created, "finished_at": finished,
                     "namespace": "team-a" if team else "", "experiment_id": beta if team else alpha,
                     "origin": "server"})
    with store.engine.begin() as conn:
        conn.execute(insert(RunRow), rows)
    return {"alpha": alpha, "beta": beta}


def run_ids(page: httpx.Response) -> list[str]:
    assert page.status_code == 200, page.text
    return re.findall(r'<tr id="run-([^"]+)"', page.text)


def link(page: httpx.Response, rel: str) -> str | None:
    found = re.search(rf'<a class="button" href="([^"]+)" rel="{rel}"', page.text)
    return html.unescape(found.group(1)) if found else None


def test_runs_list_shows_runs_newest_first_with_experiment_and_duration(pages: httpx.Client, listed) -> None:
    page = pages.get("/runs", params={"q": "listed run"})
    ids = run_ids(page)
    assert ids[:3] == ["list-0129", "list-0128", "list-0127"] and len(ids) == 50  # newest first, 50 a page
    assert "<strong>130</strong> runs match" in page.text
    row = page.text[page.text.index('id="run-list-0128"'):]
    row = row[:row.index("</tr>")]
    assert "listed run 128" in row and "SUCCEEDED" in row and "1m 15s" in row
    assert f'href="/experiments/{listed["alpha"]}">alpha</a>' in row
    assert 'name="runs" value="list-0128"' in row and 'action="/compare"' in page.text


def test_runs_list_filters_by_state_name_and_experiment(pages: httpx.Client, listed) -> None:
    failed = run_ids(pages.get("/runs", params={"state": "FAILED", "q": "listed", "size": 200}))
    assert sorted(failed) == [f"list-{i:04d}" for i in range(130) if i % 7 and i % 4 == 1]
    assert run_ids(pages.get("/runs", params={"q": "run 12"})) == [f"list-{i:04d}" for i in (129, 128, 127, 126, 125,
                                                                                           124, 123, 122, 121, 120, 12)]
    beta = run_ids(pages.get("/runs", params={"experiment": listed["beta"], "size": 200}))
    assert sorted(beta) == [f"list-{i:04d}" for i in range(0, 130, 3)]
    assert pages.get("/runs", params={"state": "BOGUS"}).status_code == 400
    assert pages.get("/runs", params={"size": "7"}).status_code == 400


def test_runs_pages_do_not_overlap_and_go_back(pages: httpx.Client, listed) -> None:
    seen, pages_seen, url = [], [], "/runs?q=listed&size=20"
    while url:
        page = pages.get(url)
        ids = run_ids(page)
        pages_seen.append((url, ids))
        seen += ids
        url = link(page, "next")
    assert len(seen) == len(set(seen)) == 130 and len(pages_seen) == 7
    assert seen == sorted(seen, reverse=True)
    third = pages.get(pages_seen[3][0])
    assert run_ids(pages.get(link(third, "prev"))) == pages_seen[2][1]  # "newer" goes back one page
    first = pages.get("/runs?q=listed&size=20")
    assert link(first, "prev") is None
    assert pages.get("/runs", params={"page_token": "forged.token"}).status_code == 400


def test_profile_selector_filters_every_list(pages: httpx.Client, listed) -> None:
    team = run_ids(pages.get("/runs", params={"ns": "team-a", "q": "listed", "size": 200}))
    assert sorted(team) == [f"list-{i:04d}" for i in range(0, 130, 3)]
    default = run_ids(pages.get("/runs", params={"ns": "default", "q": "listed", "size": 200}))
    assert not set(default) & set(team) and len(default) + len(team) == 130
    experiments = pages.get("/experiments", params={"ns": "team-a"}).text
    assert listed["beta"] in experiments and listed["alpha"] not in experiments


def test_experiment_pages_list_experiments_with_counts_and_their_runs(pages: httpx.Client, listed) -> None:
    listing = pages.get("/experiments")
    row = listing.text[listing.text.index(f'id="experiment-{listed["beta"]}"'):]
    assert '<td class="num">44</td>' in row[:row.index("</tr>")]  # runs 0, 3, ..., 129
    page = pages.get(f"/experiments/{listed['beta']}", params={"size": 200})
    assert sorted(run_ids(page)) == [f"list-{i:04d}" for i in range(0, 130, 3)]
    assert "Compare selected" in page.text and 'name="runs" value="list-0129"' in page.text
    failed = run_ids(pages.get(f"/experiments/{listed['beta']}", params={"state": "FAILED", "size": 200}))
    assert failed and set(failed) < set(run_ids(page))
    missing = pages.get("/experiments/no-such-experiment")
    assert missing.status_code == 404 and "experiment &#39;no-such-experiment&#39; not found" in missing.text


def test_uploaded_pipeline_shows_its_versions_and_graph(pages: httpx.Client, kfp_client: kfp.Client,
                                                        tmp_path: Path) -> None:
    package = tmp_path / "evaluation.yaml"
    compiler.Compiler().compile(evaluation, str(package))
    uploaded = kfp_client.upload_pipeline(str(package), pipeline_name="evaluation-lists")
    second = kfp_client.upload_pipeline_version(str(package), pipeline_version_name="second",
                                                pipeline_id=uploaded.pipeline_id)
    listing = pages.get("/pipelines")
    assert f'href="/pipelines/{uploaded.pipeline_id}">evaluation-lists</a>' in listing.text
    page = pages.get(f"/pipelines/{uploaded.pipeline_id}")
    assert page.status_code == 200 and "evaluation-lists" in page.text and "second" in page.text
    assert f'id="version-{second.pipeline_version_id}" class="current"' in page.text  # the newest by default
    graph = re.search(r'<script type="application/json" id="graph-json">(.*?)</script>', page.text, re.S)
    assert graph and '"id": "evaluate"' in graph.group(1) and '"id": "summarize"' in graph.group(1)
    assert '["evaluate", "summarize"]' in graph.group(1)
    assert 'class="dag" data-graph="graph-json"' in page.text and "/static/graph.js" in page.text
    assert "learning_rate" in page.text  # the pipeline's parameters
    first = kfp_client.list_pipeline_versions(uploaded.pipeline_id, sort_by="created_at").pipeline_versions[0]
    chosen = pages.get(f"/pipelines/{uploaded.pipeline_id}", params={"version": first.pipeline_version_id})
    assert f'id="version-{first.pipeline_version_id}" class="current"' in chosen.text
    assert pages.get(f"/pipelines/{uploaded.pipeline_id}", params={"version": "nope"}).status_code == 404
    assert pages.get("/pipelines/nope").status_code == 404


def test_compare_highlights_the_parameters_and_metrics_that_differ(pages: httpx.Client, kfp_client: kfp.Client,
                                                                   evaluated: str) -> None:
    other = kfp_client.create_run_from_pipeline_func(evaluation, arguments={"learning_rate": 0.3},
                                                     run_name="evaluation 0.3", experiment_name="dashboard")
    assert kfp_client.wait_for_run_completion(other.run_id, timeout=120).state == "SUCCEEDED"
    page = pages.get("/compare", params={"runs": f"{evaluated},{other.run_id}"})
    assert page.status_code == 200, page.text
    rows = {label: kind for kind, label in re.findall(r'<tr class="(diff|same)" data-(?:parameter|metric)="([^"]+)"',
                                                       page.text)}
    assert rows["learning_rate"] == "diff" and rows["accuracy"] == "diff" and rows["loss"] == "diff"
    same = pages.get("/compare", params=[("runs", evaluated), ("runs", evaluated)])  # one run: nothing differs
    assert set(re.findall(r'<tr class="(diff|same)" data-', same.text)) == {"same"}
    charts = re.findall(r'<script type="application/json" id="(chart-\d+)">(.*?)</script>', page.text, re.S)
    assert any('"title": "accuracy"' in body and '"type": "bar"' in body for _, body in charts)
    assert "/static/charts.js" in page.text and "/static/vendor/uPlot.iife.min.js" in page.text


def test_compare_refuses_too_many_and_unknown_runs(pages: httpx.Client, listed) -> None:
    ids = ",".join(f"list-{i:04d}" for i in range(130)) + "," + ",".join(f"x-{i}" for i in range(71))
    too_many = pages.get("/compare", params={"runs": ids})
    assert too_many.status_code == 400 and "at most 200" in too_many.text
    unknown = pages.get("/compare", params={"runs": "list-0001,nope"})
    assert unknown.status_code == 404 and "run &#39;nope&#39; not found" in unknown.text
    both = pages.get("/compare", params={"runs": "list-0001,list-0002"})
    rows = dict((label, kind) for kind, label in re.findall(r'<tr class="(diff|same)" data-parameter="([^"]+)"',
                                                              both.text))
    assert rows == {"i": "diff", "source": "same"}
    assert "Select two or more runs" in pages.get("/compare").text


def test_hostile_names_are_escaped_in_every_list(pages: httpx.Client, store: Store, listed) -> None:
    experiment = Experiments(store).create(display_name=HOSTILE, description=HOSTILE).id
    Pipelines(store).create(name=HOSTILE, description=HOSTILE)
    with store.engine.begin() as conn:
        conn.execute(insert(RunRow), [{"id": "hostile-run", "pipeline_name": HOSTILE, "display_name": HOSTILE,
                                       "state": "SUCCEEDED", "pipeline_spec": SPEC, "arguments": {HOSTILE: HOSTILE},
                                       "experiment_id": experiment, "origin": "server",
                                       "created_at": START + timedelta(days=1)}])
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;&amp;"
    for url in ("/runs", f"/runs?q={HOSTILE}", "/pipelines", f"/pipelines?q={HOSTILE}", "/experiments",
                f"/experiments/{experiment}",
                "/compare?runs=hostile-run,list-0001"):
        page = pages.get(url)
        assert page.status_code == 200, url
        assert HOSTILE not in page.text and "<script>alert" not in page.text, url
        assert escaped in page.text, url


def metrics_run(store: Store, run_id: str, metrics: dict) -> None:
    """A finished run whose one task logged `metrics` (a system.Metrics output), written as rows."""
    with store.engine.begin() as conn:
        conn.execute(insert(RunRow), [{"id": run_id, "pipeline_name": "scored", "display_name": run_id,
                                       "state": "SUCCEEDED", "pipeline_spec": SPEC, "origin": "server",
                                       "created_at": START}])
        conn.execute(insert(TaskRow), [{"id": f"{run_id}-task", "run_id": run_id, "name": "score",
                                        "display_name": "score", "path": "score", "kind": "container",
                                        "state": "SUCCEEDED"}])
        conn.execute(insert(ArtifactRow.__table__), [{"id": f"{run_id}-metrics", "run_id": run_id, "name": "metrics",
                                                      "uri": f"/nowhere/{run_id}", "schema_title": "system.Metrics",
                                                      "metadata": metrics}])
        conn.execute(insert(EventRow), [{"task_id": f"{run_id}-task", "artifact_id": f"{run_id}-metrics",
                                         "type": "OUTPUT", "key": "metrics"}])


def strict_json(text: str) -> object:
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are not JSON."""
    return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} in the page's JSON"))


def test_compare_charts_non_finite_metrics_as_gaps_and_shows_them_as_text(pages: httpx.Client, store: Store) -> None:
    metrics_run(store, "score-nan", {"display_name": "metrics", "score": float("nan"), "loss": float("inf")})
    metrics_run(store, "score-ok", {"display_name": "metrics", "score": 0.5, "loss": 0.25})
    page = pages.get("/compare", params={"runs": "score-nan,score-ok"})
    assert page.status_code == 200, page.text
    charts = {chart["title"]: chart for chart in (
        strict_json(body) for body in re.findall(r'<script type="application/json" id="chart-\d+">(.*?)</script>',
                                                 page.text, re.S))}
    assert set(charts) == {"score", "loss"}  # `display_name` names the artifact: it is no metric
    assert charts["score"]["series"][0]["values"] == [None, 0.5]
    assert charts["loss"]["series"][0]["values"] == [None, 0.25]
    row = page.text[page.text.index('data-metric="score"'):]
    assert re.search(r'<td title="NaN">nan</td>\s*<td title="0.5">0.5</td>', row[:row.index("</tr>")])


def test_counts_agree_with_the_lists_they_stand_for(pages: httpx.Client, store: Store, listed) -> None:
    experiment = Experiments(store).create(display_name="counted").id
    rows = [("counted-done", "SUCCEEDED", "AVAILABLE"), ("counted-old", "SUCCEEDED", "ARCHIVED"),
            ("counted-paused", "PAUSED", "AVAILABLE"), ("counted-canceling", "CANCELING", "AVAILABLE"),
            ("counted-hidden", "RUNNING", "ARCHIVED")]
    with store.engine.begin() as conn:
        conn.execute(insert(RunRow), [{"id": run_id, "pipeline_name": "counted", "display_name": run_id,
                                       "state": state, "storage_state": storage, "pipeline_spec": SPEC,
                                       "experiment_id": experiment, "origin": "server",
                                       "created_at": START + timedelta(days=2)} for run_id, state, storage in rows])
    listing = pages.get("/experiments").text
    row = listing[listing.index(f'id="experiment-{experiment}"'):]
    assert '<td class="num">3</td>' in row[:row.index("</tr>")]  # the runs its page lists by default
    assert len(run_ids(pages.get(f"/experiments/{experiment}"))) == 3
    home = pages.get("/").text
    total = int(re.search(r'id="runs-count"><a href="/runs"><span class="big">(\d+)</span>', home).group(1))
    assert re.search(rf"<strong>{total:,}</strong> runs</span>", pages.get("/runs").text)
    in_progress = home[home.index("<h2>In progress</h2>"):home.index("<h2>Recent runs</h2>")]
    shown = set(re.findall(r'<tr id="run-([^"]+)"', in_progress))
    assert {"counted-paused", "counted-canceling"} <= shown and "counted-hidden" not in shown
    count = int(re.search(r'id="in-progress-count"><span class="big">(\d+)</span>', home).group(1))
    per_state = [re.search(r"<strong>([\d,]+)</strong> runs? match", pages.get("/runs", params={"state": state}).text)
                 for state in ("PENDING", "RUNNING", "PAUSED", "CANCELING")]
    assert count == sum(int(found.group(1).replace(",", "")) for found in per_state if found)
    assert "counted-old" not in home and "counted-hidden" not in home
