"""The artifact viewer over real HTTP: each viewer, lineage, the content endpoint's protections, and hostile content.

The `evaluated` run (fixture) logged one artifact of each kind the dashboard shows; the `odd` run here
logs what users should not be able to hurt anyone with (script in HTML, Markdown and CSV, in a
metric's name, a confusion-matrix label and the run's name) and the less common shapes (a directory
dataset of JSON lines, a binary dataset, a model directory).

No `from __future__ import annotations` here: kfp reads the components' annotations at definition.
"""

import json
import re
import uuid
from html.parser import HTMLParser
from typing import Any, Dict, List

import httpx
import kfp
import pytest
from kfp import dsl
from sqlalchemy import insert

from flowdeck.controlplane.dashboard import previews
from flowdeck.store import Store
from flowdeck.store.models import ArtifactRow

HOSTILE_RUN_NAME = "<script>alert('run')</script>"


@dsl.component
def misbehave(report: dsl.Output[dsl.HTML], notes: dsl.Output[dsl.Markdown], table: dsl.Output[dsl.Dataset],
              scores: dsl.Output[dsl.Metrics], classes: dsl.Output[dsl.ClassificationMetrics],
              parts: dsl.Output[dsl.Dataset], blob: dsl.Output[dsl.Dataset], model: dsl.Output[dsl.Model]):
    import os

    with open(report.path, "w") as f:
        f.write("<h1>Hi</h1><script>parent.document.title = 'owned'</script>")
    with open(notes.path, "w") as f:
        f.write("# Notes\n\n<script>alert('md')</script>\n\n[click](javascript:alert('link')) [ok](https://example.org)\n")
    with open(table.path, "w") as f:
        f.write('name,comment\nmallory,"<img src=x onerror=alert(\'csv\')>"\n')
    scores.log_metric("<script>alert('metric')</script>", 1.0)
    classes.log_confusion_matrix(["<b onmouseover=alert(1)>yes</b>", "no"], [[3, 1], [0, 4]])
    os.makedirs(parts.path)
    open(os.path.join(parts.path, "_SUCCESS"), "w").close()
    with open(os.path.join(parts.path, "part-0.jsonl"), "w") as f:
        f.write('{"id": 1, "tags": ["a", "b"]}\n{"id": 2, "extra": "<i>x</i>"}\n')
    with open(blob.path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    os.makedirs(os.path.join(model.path, "weights"))
    with open(os.path.join(model.path, "weights", "layer.bin"), "wb") as f:
        f.write(b"\x00\x01\x02")
    model.metadata["framework"] = "<script>alert('meta')</script>"


@dsl.pipeline
def odd():
    misbehave()


class Tables(HTMLParser):
    """The text of each cell of each <table id=...> in a page: {id: [[cell, ...], ...]}."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: Dict[str, List[List[str]]] = {}
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table" and dict(attrs).get("id"):
            self._table = self.tables.setdefault(dict(attrs)["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(page: str) -> Dict[str, List[List[str]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


def embedded(page: str, element_id: str) -> Any:
    found = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert found, f"no JSON block {element_id!r} in the page"
    return json.loads(found.group(1))


def outputs(pages: httpx.Client, run_id: str) -> Dict[str, str]:
    """{output name: artifact id} of a run's tasks, from the KFP API."""
    run = pages.get(f"/apis/v2beta1/runs/{run_id}", headers={"Accept": "application/json"}).json()
    return {key: value["artifact_ids"][0] for task in run["run_details"]["task_details"]
            for key, value in task.get("outputs", {}).items()}


@pytest.fixture(scope="module")
def artifacts(pages: httpx.Client, evaluated: str) -> Dict[str, str]:
    return outputs(pages, evaluated)


@pytest.fixture(scope="module")
def odd_artifacts(kfp_client: kfp.Client, pages: httpx.Client) -> Dict[str, str]:
    run = kfp_client.create_run_from_pipeline_func(odd, run_name=HOSTILE_RUN_NAME)
    assert kfp_client.wait_for_run_completion(run.run_id, timeout=120).state == "SUCCEEDED"
    return outputs(pages, run.run_id)


def page(pages: httpx.Client, artifact_id: str) -> str:
    answer = pages.get(f"/artifacts/{artifact_id}")
    assert answer.status_code == 200, answer.text
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    return answer.text


def test_metrics_show_as_a_table(pages: httpx.Client, artifacts: Dict[str, str]) -> None:
    shown = page(pages, artifacts["scores"])
    assert "system.Metrics" in shown
    assert tables(shown)["metrics"] == [["Metric", "Value"], ["accuracy", "0.9"], ["loss", "0.1"]]


def test_classification_metrics_show_the_confusion_matrix_and_roc_curve(
        pages: httpx.Client, artifacts: Dict[str, str]) -> None:
    shown = page(pages, artifacts["classes"])
    matrix = tables(shown)["confusion-matrix"]
    assert matrix[0] == ["", "Predicted label"]
    assert matrix[1] == ["True label", "cat", "dog", "bird"]
    assert [row[0] for row in matrix[2:]] == ["cat", "dog", "bird"]
    counts = [[int(cell.split()[0]) for cell in row[1:]] for row in matrix[2:]]
    assert counts == [[8, 1, 1], [2, 7, 1], [0, 1, 9]]
    assert matrix[2][1] == "8 80%"  # a cell: its count and its share of the true label's row
    chart = embedded(shown, "roc-data")
    assert chart["type"] == "line" and chart["x"] == [0.0, 0.1, 0.3, 1.0]
    assert chart["series"][0] == {"label": "ROC", "values": [0.0, 0.6, 0.9, 1.0]}
    assert chart["series"][1]["values"] == chart["x"]  # the chance diagonal
    assert 'data-chart="roc-data"' in shown and "/static/vendor/uPlot.iife.min.js" in shown
    assert "AUC 0.845" in shown


def test_html_is_shown_in_a_sandboxed_frame_and_served_unable_to_run_script(
        pages: httpx.Client, artifacts: Dict[str, str]) -> None:
    artifact = artifacts["report"]
    shown = page(pages, artifact)
    frame = re.search(r"<iframe[^>]*>", shown).group(0)
    assert 'sandbox=""' in frame and f'src="/artifacts/{artifact}/content"' in frame
    assert "<h1>Report</h1>" not in shown  # the page links the content, it does not include it
    content = pages.get(f"/artifacts/{artifact}/content")
    assert content.status_code == 200 and content.text.startswith("<h1>Report</h1>")
    assert content.headers["content-type"] == "text/html; charset=utf-8"
    assert content.headers["content-security-policy"].startswith("sandbox;")
    assert "default-src 'none'" in content.headers["content-security-policy"]
    assert content.headers["x-content-type-options"] == "nosniff"


def test_markdown_is_rendered(pages: httpx.Client, artifacts: Dict[str, str]) -> None:
    shown = page(pages, artifacts["notes"])
    assert "<h1>Notes</h1>" in shown and "<em>learning rate</em> was <code>0.1</code>" in shown


def test_a_dataset_shows_its_header_and_first_rows(pages: httpx.Client, artifacts: Dict[str, str]) -> None:
    shown = page(pages, artifacts["predictions"])
    rows = tables(shown)["dataset-preview"]
    assert rows[0] == ["id", "label", "score"]
    assert rows[1:3] == [["0", "dog", "0.0"], ["1", "cat", "0.1"]]
    assert len(rows) == 1 + previews.PREVIEW_ROWS and "The first 20 rows." in shown
    content = pages.get(f"/artifacts/{artifacts['predictions']}/content")
    assert content.text.count("\n") == 31 and "attachment" in content.headers["content-disposition"]


def test_lineage_names_the_producer_and_the_consumer(pages: httpx.Client, artifacts: Dict[str, str]) -> None:
    shown = page(pages, artifacts["predictions"])
    produced = re.search(r'id="produced-by".*?</table>', shown, re.S).group(0)
    consumed = re.search(r'id="consumed-by".*?</table>', shown, re.S).group(0)
    assert ">evaluate</a>" in produced and ">summarize</a>" not in produced
    assert ">summarize</a>" in consumed and ">evaluation 0.1</a>" in consumed


def test_a_missing_artifact_is_a_404_page(pages: httpx.Client) -> None:
    for path in ("/artifacts/nope", "/artifacts/nope/content"):
        answer = pages.get(path)
        assert answer.status_code == 404 and "artifact &#39;nope&#39; not found" in answer.text


def test_hostile_content_never_reaches_a_page_unescaped(
        pages: httpx.Client, odd_artifacts: Dict[str, str]) -> None:
    shown = {name: page(pages, artifact) for name, artifact in odd_artifacts.items()}
    for name, text in shown.items():
        assert "<script>alert" not in text and "<img" not in text and "<b " not in text, name
        assert "&lt;script&gt;alert(&#39;run&#39;)&lt;/script&gt;" in text, name  # the run's name, escaped
    assert "owned" not in shown["report"]
    assert "<p>&lt;script&gt;alert('md')&lt;/script&gt;</p>" in shown["notes"]
    assert "[click](javascript:alert('link'))" in shown["notes"]  # left as text, not made a link
    assert 'href="javascript' not in shown["notes"] and '<a href="https://example.org">ok</a>' in shown["notes"]
    assert "&lt;img src=x onerror=alert(&#39;csv&#39;)&gt;" in shown["table"]
    assert "&lt;script&gt;alert(&#39;metric&#39;)&lt;/script&gt;" in shown["scores"]
    assert "&lt;b onmouseover=alert(1)&gt;yes&lt;/b&gt;" in shown["classes"]
    assert "&lt;script&gt;alert(&#39;meta&#39;)&lt;/script&gt;" in shown["model"]
    content = pages.get(f"/artifacts/{odd_artifacts['report']}/content")
    assert "<script>" in content.text and content.headers["content-security-policy"].startswith("sandbox;")


def test_a_directory_dataset_previews_its_first_data_file(
        pages: httpx.Client, odd_artifacts: Dict[str, str]) -> None:
    shown = page(pages, odd_artifacts["parts"])
    assert tables(shown)["dataset-preview"] == [["id", "tags", "extra"], ["1", '["a", "b"]', ""],
                                                ["2", "", "<i>x</i>"]]
    assert "JSONL, part-0.jsonl" in shown and "All 2 rows." in shown
    part = pages.get(f"/artifacts/{odd_artifacts['parts']}/content", params={"file": "part-0.jsonl"})
    assert part.status_code == 200 and part.text.startswith('{"id": 1')


def test_a_binary_dataset_says_it_cannot_be_previewed(pages: httpx.Client, odd_artifacts: Dict[str, str]) -> None:
    shown = page(pages, odd_artifacts["blob"])
    assert "This file cannot be previewed: it is a binary file." in shown and "dataset-preview" not in shown


def test_a_model_lists_its_files_and_serves_only_those(pages: httpx.Client, odd_artifacts: Dict[str, str]) -> None:
    model = odd_artifacts["model"]
    shown = page(pages, model)
    assert f'href="/artifacts/{model}/content?file=weights/layer.bin"' in shown
    weights = pages.get(f"/artifacts/{model}/content", params={"file": "weights/layer.bin"})
    assert weights.content == b"\x00\x01\x02"
    assert weights.headers["content-type"] == "application/octet-stream"
    assert weights.headers["content-disposition"].startswith("attachment;")
    for escape in ("../../../../../../etc/passwd", "/etc/passwd", "weights/../../odd", "weights/./layer.bin",
                   "weights", "nope"):
        answer = pages.get(f"/artifacts/{model}/content", params={"file": escape})
        assert answer.status_code == 404, escape
    assert pages.get(f"/artifacts/{model}/content").status_code == 404  # a directory: name a file
    assert pages.get(f"/artifacts/{odd_artifacts['blob']}/content", params={"file": "x"}).status_code == 404


class Endless:
    """A CSV stream that never ends (and refuses to be read past 8 MiB): a preview must stop early."""

    def __init__(self) -> None:
        self.served = 0
        self._line = b"1,2,3\n"

    def read(self, size: int = -1) -> bytes:
        assert 0 <= size <= 8 << 20, f"asked for {size} bytes"
        self.served += size
        assert self.served <= 8 << 20, "read far more than a preview needs"
        return (b"a,b,c\n" if self.served == size else b"") + self._line * (size // len(self._line))


def test_a_preview_reads_only_the_start_of_a_large_file() -> None:
    stream = Endless()
    table = previews.table_preview(stream, "huge.csv")
    assert table.header == ["a", "b", "c"] and len(table.rows) == previews.PREVIEW_ROWS and table.more
    assert stream.served <= previews.PREVIEW_BYTES + 1


def logged(store: Store, run_id: str, artifact_id: str, schema_title: str, metadata: Any) -> str:
    """An artifact of run `run_id` with `metadata` as given (a user may log any JSON), written as a row."""
    with store.engine.begin() as conn:
        conn.execute(insert(ArtifactRow.__table__), [{"id": artifact_id, "run_id": run_id, "name": artifact_id,
                                                      "uri": f"/nowhere/{artifact_id}", "schema_title": schema_title,
                                                      "metadata": metadata}])
    return artifact_id


@pytest.mark.parametrize("schema_title, metadata", [
    ("system.ClassificationMetrics", {"confusionMatrix": {"structure": "oops", "rows": 3}, "confidenceMetrics": 7}),
    ("system.ClassificationMetrics", {"confusionMatrix": {"categories": 5, "rows": [[1]]},
                                      "confidenceMetrics": [1, {"recall": "x"}]}),
    ("system.ClassificationMetrics", {"confusionMatrix": {"annotationSpecs": [{"displayName": "a"}], "rows": "x"}}),
    ("system.ClassificationMetrics", [1, 2]),
    ("system.ClassificationMetrics", "text"),
    ("system.Metrics", [1, 2]),
    ("system.Metrics", 3.5),
])
def test_odd_metadata_shows_as_not_logged(pages: httpx.Client, store: Store, evaluated: str,
                                          schema_title: str, metadata: Any) -> None:
    artifact = logged(store, evaluated, f"odd-{uuid.uuid4().hex[:12]}", schema_title, metadata)
    shown = page(pages, artifact)
    if schema_title == "system.Metrics":
        assert "No metrics were logged." in shown
    else:
        assert "No confusion matrix or ROC curve was logged." in shown
    assert 'id="metadata-title"' in shown  # what was logged is still there to read


def test_large_roc_curves_and_metadata_are_cut_for_the_page(pages: httpx.Client, store: Store,
                                                             evaluated: str) -> None:
    readings = [{"confidenceThreshold": 1 - i / 999, "falsePositiveRate": i / 999, "recall": (i / 999) ** 0.5}
                for i in range(1000)]
    artifact = logged(store, evaluated, "big-roc", "system.ClassificationMetrics",
                      {"confidenceMetrics": readings, "notes": "x" * 200_000})
    shown = page(pages, artifact)
    rows = tables(shown)["roc-points"]
    assert len(rows) == 1 + previews.ROC_TABLE_POINTS and "101 of 1000, evenly spread" in shown
    assert rows[1][1:] == ["0", "0"] and rows[-1][1:] == ["1", "1"]  # both ends of the curve are listed
    assert len(embedded(shown, "roc-data")["x"]) == 1000  # the chart draws every point
    assert 'id="metadata-cut"' in shown and len(shown) < 150_000
