"""Reading pipeline files and spec documents: what `flowdeck run`, uploads and the run controller all load.

The loader refuses YAML aliases (a few hundred bytes of them expand into millions of nodes), checks
the platform spec's shape where the engine reads it, and reads back what `spec_document` writes.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from compat import COMPAT_DIR

from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.spec import from_documents, load_pipeline, spec_document

SPEC = {"pipelineInfo": {"name": "empty"}, "root": {"dag": {"tasks": {}}}}
ALIASES = "pipelineInfo: &info {name: aliased}\nroot: {dag: {tasks: {}}}\nsdkVersion: *info\n"


def test_a_pipeline_file_with_aliases_is_refused_naming_the_anchor(tmp_path: Path) -> None:
    path = tmp_path / "aliased.yaml"
    path.write_text(ALIASES)
    with pytest.raises(PipelineError) as error:
        load_pipeline(path)
    assert str(error.value) == (f"{path}: YAML aliases are not allowed in pipeline files (the node anchored at "
                                "line 1, column 15 is used again through an alias); compiled KFP pipelines never "
                                "use anchors or aliases")
    # the same line reaches a `flowdeck run` user, as an invalid pipeline (exit status 2, nothing recorded)
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "run", str(path)], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "FLOWDECK_HOME": str(tmp_path / "home")})
    assert result.returncode == 2, result.stderr
    assert "YAML aliases are not allowed in pipeline files" in result.stderr


def test_anchors_alone_are_harmless_and_accepted(tmp_path: Path) -> None:
    path = tmp_path / "anchored.yaml"
    path.write_text("pipelineInfo: &info {name: anchored}\nroot: {dag: {tasks: {}}}\n")
    assert load_pipeline(path).name == "anchored"


@pytest.mark.parametrize(("platform_spec", "expected"), [
    (7, "platform_spec must be a mapping, not a number"),
    ("k8s", "platform_spec must be a mapping, not a string"),
    ({"platforms": []}, "platform_spec.platforms must be a mapping, not a list"),
    ({"platforms": {"kubernetes": None}}, "platform_spec.platforms.kubernetes must be a mapping, not null"),
    ({"platforms": {"kubernetes": {"deploymentSpec": {"executors": 1}}}},
     "platform_spec.platforms.kubernetes.deploymentSpec.executors must be a mapping, not a number"),
    ({"platforms": {"kubernetes": {"deploymentSpec": {"executors": {"exec-a": [True]}}}}},
     "platform_spec.platforms.kubernetes.deploymentSpec.executors.exec-a must be a mapping, not a list"),
])
def test_a_platform_spec_of_the_wrong_shape_is_a_pipeline_error(platform_spec: object, expected: str) -> None:
    with pytest.raises(PipelineError) as error:
        load_pipeline({"pipeline_spec": SPEC, "platform_spec": platform_spec})
    assert str(error.value) == f"<dict>: {expected}"
    with pytest.raises(PipelineError) as error:  # as the second document of a YAML file
        from_documents([SPEC, platform_spec], "two.yaml")
    assert str(error.value) == f"two.yaml: {expected}"


def test_spec_document_is_what_the_loader_reads_back() -> None:
    spec, platform = yaml.safe_load_all((COMPAT_DIR / "valid" / "pipeline_with_volume.yaml").read_text())
    assert spec_document(spec, platform) == {"pipeline_spec": spec, "platform_spec": platform}
    loaded = load_pipeline(spec_document(spec, platform))
    assert (loaded.spec, loaded.platform_spec) == (spec, platform)
    assert loaded.kubernetes_executors  # the path the engine reads
    for empty in (None, {}):
        assert spec_document(spec, empty) is spec
        assert load_pipeline(spec_document(spec, empty)).platform_spec == {}


@pytest.mark.parametrize("name", ["x" * 257, "nul\x00byte", "a/b", "..", 7])
def test_a_pipeline_name_the_store_cannot_hold_is_refused(name: object) -> None:
    spec = {"pipelineInfo": {"name": name}, "root": {"dag": {"tasks": {}}}, "schemaVersion": "2.1.0"}
    with pytest.raises(PipelineError, match="pipelineInfo.name must be a string of at most 256 characters"):
        load_pipeline(spec)
