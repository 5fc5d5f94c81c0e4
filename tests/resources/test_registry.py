"""The kind registry: kinds come from `flowdeck.kinds` entry points and answer to all their names."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from widget_kind import WIDGET, install_plugin

from flowdeck.resources import ENTRY_POINT_GROUP, Registry, UnknownKind
from flowdeck.resources.registry import load_entry_points

#: The kinds flowdeck's own capabilities publish.
INSTALLED = ["Experiment", "InferenceService", "JAXJob", "PaddleJob", "PipelineRun", "Profile", "PyTorchJob", "TFJob",
             "TrainJob", "XGBoostJob"]


def test_the_installed_package_publishes_its_kinds_as_entry_points() -> None:
    """In a fresh interpreter, the default registry finds every capability's kinds without importing them first
    (nor numpy: the serving kind registers without the serving extra's packages)."""
    code = ("from flowdeck.resources import registry; import sys; "
            "assert 'flowdeck.pipelines.kind' not in sys.modules; "
            "print([k.kind for k in registry()], registry().get('pr').api_version, 'numpy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{INSTALLED} pipelines.flowdeck.dev/v1alpha1 False"


def test_a_plugin_package_adds_its_kind_through_its_entry_point(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(install_plugin(tmp_path)))
    loaded = load_entry_points(Registry())
    assert [k.kind for k in loaded] == sorted([*INSTALLED, "Widget"])
    assert loaded.get("wd").plural == "widgets"


def test_a_broken_plugin_is_left_out_and_the_other_kinds_still_load(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    info = tmp_path / "broken_kinds-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-kinds\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nGone = no_such_module_here:KIND\nNotAKind = json:dumps\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="flowdeck.resources"):
        loaded = load_entry_points(Registry())
    assert [k.kind for k in loaded] == INSTALLED
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "kind Gone (no_such_module_here:KIND) is left out: ModuleNotFoundError" in messages
    assert ("kind NotAKind (json:dumps) is left out: TypeError: json:dumps is a function, not a flowdeck Kind"
            in messages)


@pytest.mark.parametrize("name", ["Widget", "widget", "WIDGET", "widgets", "Widgets", "wd", "WD"])
def test_a_kind_answers_to_its_kind_plural_and_short_names_in_any_case(name: str) -> None:
    assert Registry([WIDGET]).get(name) is WIDGET


def test_an_unknown_name_lists_the_known_kinds_or_suggests_the_closest() -> None:
    kinds = Registry([WIDGET])
    with pytest.raises(UnknownKind, match=r"^unknown kind 'gizmo'; known kinds: Widget$"):
        kinds.get("gizmo")
    with pytest.raises(UnknownKind, match=r"^unknown kind 'widgit'; did you mean Widget\?$"):
        kinds.get("widgit")
    with pytest.raises(UnknownKind, match=r"no kinds are installed"):
        Registry().get("widget")


def test_two_kinds_cannot_share_a_name_and_a_kind_can_be_replaced() -> None:
    kinds = Registry([WIDGET])
    clash = replace(WIDGET, kind="Wodget", plural="wodgets", short_names=("wd",))
    with pytest.raises(ValueError, match="the name 'wd' is already used by kind Widget"):
        kinds.register(clash)
    assert kinds.find("wodgets") is None  # nothing of the refused kind was registered
    renamed = replace(WIDGET, short_names=("wg",))
    kinds.register(renamed)  # the same kind again: replaces it, with its new names
    assert kinds.get("wg") is renamed and kinds.find("wd") is None
    kinds.unregister("Widget")
    assert len(kinds) == 0


def test_a_kind_describes_itself_for_the_api() -> None:
    assert WIDGET.to_json() == {
        "kind": "Widget", "apiVersion": "test.flowdeck.dev/v1",
        "apiVersions": ["test.flowdeck.dev/v1", "test.flowdeck.dev/v1beta1"], "plural": "widgets",
        "shortNames": ["wd"], "outcomes": {"Succeeded": "Succeeded", "Failed": "Failed", "Ready": "Ready"},
        "columns": [{"name": "SIZE", "path": "spec.size"}, {"name": "STEP", "path": "status.step"}],
        "hasLogs": True,
        "clusterScoped": False,
    }
