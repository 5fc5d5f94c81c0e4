"""What the artifact viewers show, read from an artifact's metadata or from the first bytes of its file.

Everything here reads as little as it can: a dataset preview reads at most `PREVIEW_BYTES` of the
file (a 1 GB CSV costs the same as a small one), Markdown at most `MARKDOWN_BYTES`. What comes out is
plain data (strings and numbers) that the templates escape; the one exception is `render_markdown`,
whose HTML comes from markdown-it-py with raw HTML disabled and only safe link schemes allowed.

Metadata follows what kfp's `dsl.ClassificationMetrics` logs: `confusionMatrix` =
`{"annotationSpecs": [{"displayName"}], "rows": [{"row": [...]}]}` (also accepted: the specs under
`structure`, or `categories` as plain strings) and `confidenceMetrics` =
`[{"confidenceThreshold", "falsePositiveRate", "recall"}]`. Metadata of any other shape (a user may log
anything) counts as not logged: the readers here never fail on it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from typing import IO, Any

from markdown_it import MarkdownIt

#: Rows a dataset preview shows (after its header row).
PREVIEW_ROWS = 20
#: The most a dataset preview reads of a file.
PREVIEW_BYTES = 1 << 20
#: The most of a Markdown file that is rendered.
MARKDOWN_BYTES = 1 << 20
#: Longer cells are cut (with "…") so one huge field cannot flood the page.
CELL_CHARS = 200
#: The ROC table lists at most this many points (the chart draws them all).
ROC_TABLE_POINTS = 101

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


class Unpreviewable(Exception):
    """The file cannot be shown as a table; the message says why, in one line."""


@dataclass
class Table:
    """The first rows of a dataset file."""

    format: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    #: Whether the file has rows beyond those shown.
    more: bool = False


def read_head(stream: IO[bytes], limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes from the start of `stream`, and whether the stream had more."""
    data = stream.read(limit + 1)
    return data[:limit], len(data) > limit


def table_preview(stream: IO[bytes], name: str) -> Table:
    """The header and first `PREVIEW_ROWS` rows of a CSV, TSV or JSON-lines file (format from `name`'s
    extension, else from its first line). Raises `Unpreviewable` for anything else."""
    head, truncated = read_head(stream, PREVIEW_BYTES)
    if b"\0" in head:
        raise Unpreviewable("it is a binary file")
    if truncated:
        cut = head.rfind(b"\n")
        if cut < 0:
            raise Unpreviewable(f"its first line is longer than {PREVIEW_BYTES // 1024} KiB")
        head = head[:cut + 1]
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unpreviewable("it is not UTF-8 text (a binary file?)") from None
    suffix = re.search(r"\.[A-Za-z0-9]+$", name)
    kind = _FORMATS.get(suffix.group(0).lower() if suffix else "") or _sniff(text)
    table = _jsonl(text) if kind == "jsonl" else _delimited(text, "\t" if kind == "tsv" else ",")
    table.format = kind
    table.more = table.more or truncated
    return table


def _sniff(text: str) -> str:
    first = text.lstrip().partition("\n")[0]
    if first.startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS - 1] + "…"


def _delimited(text: str, delimiter: str) -> Table:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = [_cell(value) for value in next(reader, [])]
        rows: list[list[str]] = []
        for row in reader:
            if len(rows) == PREVIEW_ROWS:
                return Table("", header, rows, more=True)
            rows.append([_cell(value) for value in row])
    except csv.Error as exc:
        raise Unpreviewable(f"it is not valid {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})") from None
    return Table("", header, rows)


def _jsonl(text: str) -> Table:
    header: list[str] = []
    records: list[dict[str, Any]] = []
    lines = (line for line in text.splitlines() if line.strip())
    for number, line in enumerate(lines, 1):
        if len(records) == PREVIEW_ROWS:
            return _records(header, records, more=True)
        try:
            record = json.loads(line)
        except ValueError:
            raise Unpreviewable(f"line {number} is not JSON") from None
        if not isinstance(record, dict):
            record = {"value": record}
        header.extend(key for key in record if key not in header)
        records.append(record)
    return _records(header, records, more=False)


def _records(header: list[str], records: list[dict[str, Any]], *, more: bool) -> Table:
    rows = [[_cell(record[key]) if key in record else "" for key in header] for record in records]
    return Table("", [_cell(key) for key in header], rows, more=more)


# -- Markdown --------------------------------------------------------------------------------------

#: Links and images may use these schemes (or none: a relative link); `javascript:` and friends never.
_SAFE_LINK = re.compile(r"^(?:https?:|mailto:|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)
_SAFE_IMAGE = re.compile(r"^data:image/(?:png|gif|jpeg|webp);", re.IGNORECASE)

_markdown = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
_markdown.validateLink = lambda url: bool(_SAFE_LINK.match(url.strip()) or _SAFE_IMAGE.match(url.strip()))


def render_markdown(text: str) -> str:
    """HTML for Markdown `text`: raw HTML is shown as text, links with unsafe schemes stay plain text."""
    return _markdown.render(text)


# -- ClassificationMetrics -------------------------------------------------------------------------

@dataclass
class Cell:
    """One cell of a confusion matrix: how many of its row's true label were predicted as its column's."""

    value: float
    #: The share of its row (true label), 0..1.
    share: float
    #: 0..1: how dark the cell is drawn (its value against the largest in the matrix).
    shade: float


@dataclass
class ConfusionMatrix:
    """A confusion matrix as the page draws it: the class labels, and a row of cells per true label."""

    labels: list[str]
    rows: list[list[Cell]]


def confusion_matrix(metadata: Any) -> ConfusionMatrix | None:
    """The matrix logged by `log_confusion_matrix` (rows: true labels, columns: predicted), or None (also for
    metadata of another shape)."""
    matrix = metadata.get("confusionMatrix") if isinstance(metadata, dict) else None
    if not isinstance(matrix, dict):
        return None
    structure = matrix.get("structure")
    specs = matrix.get("annotationSpecs") or (structure.get("annotationSpecs") if isinstance(structure, dict) else None)
    categories = matrix.get("categories")
    if isinstance(specs, list):
        labels = [str(spec.get("displayName", "")) if isinstance(spec, dict) else str(spec) for spec in specs]
    elif isinstance(categories, list):
        labels = [str(label) for label in categories]
    else:
        return None
    rows = matrix.get("rows")
    if not isinstance(rows, list):
        return None
    values = [row.get("row") if isinstance(row, dict) else row for row in rows]
    if not labels or len(values) != len(labels) or any(
            not isinstance(row, list) or len(row) != len(labels) or not all(_number(v) for v in row)
            for row in values):
        return None
    largest = max((max(row) for row in values), default=0) or 1
    rows = [[Cell(v, v / (sum(row) or 1), max(v, 0) / largest) for v in row] for row in values]
    return ConfusionMatrix(labels, rows)


@dataclass
class RocPoint:
    """One point of a ROC curve: false and true positive rates at a confidence threshold (None if not logged)."""

    fpr: float
    tpr: float
    threshold: float | None


def roc_curve(metadata: Any) -> list[RocPoint]:
    """The ROC points logged by `log_roc_curve`/`log_roc_data_point`, by false positive rate (then recall); none
    for metadata of another shape."""
    readings = metadata.get("confidenceMetrics") if isinstance(metadata, dict) else None
    points = []
    for reading in readings if isinstance(readings, list) else []:
        if not isinstance(reading, dict):
            continue
        fpr, tpr = reading.get("falsePositiveRate"), reading.get("recall")
        threshold = reading.get("confidenceThreshold")
        if _number(fpr) and _number(tpr):
            points.append(RocPoint(fpr, tpr, threshold if _number(threshold) else None))
    return sorted(points, key=lambda point: (point.fpr, point.tpr))


def roc_chart(points: list[RocPoint]) -> dict[str, Any]:
    """The ROC curve in `static/charts.js`'s shape, with the chance diagonal as a dashed second series (untitled:
    the page's heading names it)."""
    x = [point.fpr for point in points]
    return {"type": "line", "title": "", "xLabel": "False positive rate", "yLabel": "True positive rate",
            "x": x, "xRange": [0, 1], "yRange": [0, 1],
            "series": [{"label": "ROC", "values": [point.tpr for point in points]},
                       {"label": "Chance", "values": x, "dash": True}]}


def area_under(points: list[RocPoint]) -> float | None:
    """The area under the ROC curve (trapezoids), or None when the curve does not span fpr 0..1."""
    if len(points) < 2 or points[0].fpr > 0 or points[-1].fpr < 1:
        return None
    return sum((b.fpr - a.fpr) * (a.tpr + b.tpr) / 2 for a, b in zip(points, points[1:], strict=False))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def roc_table(points: list[RocPoint], limit: int = ROC_TABLE_POINTS) -> list[RocPoint]:
    """At most `limit` of the points for the page's table, evenly spread over the curve (its ends included)."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def metrics(metadata: Any) -> list[tuple[str, Any]]:
    """(name, value) for each metric `log_metric` recorded, in logged order: every key of a Metrics artifact's
    metadata but `display_name` (the artifact's name, which kfp keeps there); none for metadata that is not a
    mapping. The comparison page counts the same metrics as the artifact page shows."""
    if not isinstance(metadata, dict):
        return []
    return [(str(name), value) for name, value in metadata.items() if name != "display_name"]


def metric_rows(metadata: Any) -> list[tuple[str, str]]:
    """(name, value as text) for each of `metrics(metadata)`; values other than text as JSON."""
    return [(name, value if isinstance(value, str) else json.dumps(value)) for name, value in metrics(metadata)]
