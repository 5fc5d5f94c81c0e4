"""Pipelines, versions and uploads over the KFP API, driven by the real kfp.Client."""

import http.server
import io
import json
import os
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import kfp
import pytest
import yaml
from kfp_server_api.exceptions import ApiException

#: KFP's compiled test pipelines, next to the checkout (as tests/pipelines/compat.py finds them).
COMPAT_DIR = Path(os.environ.get("FLOWDECK_KFP_COMPAT", Path(__file__).resolve().parents[3] / "shared" / "kfp-compat"))
INVALID = COMPAT_DIR / "invalid"
WITH_PLATFORM_SPEC = COMPAT_DIR / "valid" / "pipeline_with_volume.yaml"


#: Top-level keys of 250 bytes that expand to 9**6 strings (4 MB of JSON) once their aliases are followed.
ALIAS_BOMB = ("a: &a [" + ", ".join(["lol"] * 9) + "]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(5))).encode()


def test_upload_then_upload_a_version_and_list_them(kfp_client: kfp.Client, package: Path) -> None:
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name="pl-upload", description="adds")
    assert (pipeline.display_name, pipeline.description) == ("pl-upload", "adds")
    assert kfp_client.get_pipeline_id("pl-upload") == pipeline.pipeline_id
    assert kfp_client.get_pipeline(pipeline.pipeline_id).name == "pl-upload"

    # the upload made a first version named like the pipeline
    first, = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    assert first.display_name == "pl-upload" and first.pipeline_spec is None  # lists leave specs out

    second = kfp_client.upload_pipeline_version(str(package), "v2", pipeline_name="pl-upload", description="two")
    assert (second.pipeline_id, second.display_name, second.description) == (pipeline.pipeline_id, "v2", "two")
    newest_first = kfp_client.list_pipeline_versions(pipeline.pipeline_id, sort_by="created_at desc")
    assert [v.display_name for v in newest_first.pipeline_versions] == ["v2", "pl-upload"]
    assert newest_first.total_size == 2

    version = kfp_client.get_pipeline_version(pipeline.pipeline_id, second.pipeline_version_id)
    assert version.pipeline_spec == yaml.safe_load(package.read_text())

    named = json.dumps({"predicates": [{"operation": 1, "key": "name", "stringValue": "v2"}]})
    found = kfp_client.list_pipeline_versions(pipeline.pipeline_id, filter=named).pipeline_versions
    assert [v.pipeline_version_id for v in found] == [second.pipeline_version_id]


def test_a_pipeline_with_versions_is_deleted_only_with_cascade(kfp_client: kfp.Client, package: Path) -> None:
    pipeline = kfp_client.upload_pipeline(str(package), pipeline_name="pl-delete")
    version, = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    with pytest.raises(ApiException) as error:
        kfp_client.delete_pipeline(pipeline.pipeline_id)
    assert error.value.status == 400 and "cascade" in error.value.body

    kfp_client.delete_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id)
    kfp_client.delete_pipeline(pipeline.pipeline_id)  # no versions left: deleted
    assert kfp_client.get_pipeline_id("pl-delete") is None

    again = kfp_client.upload_pipeline(str(package), pipeline_name="pl-delete")
    kfp_client.pipelines.pipeline_service_delete_pipeline(again.pipeline_id, cascade=True)
    with pytest.raises(ApiException) as error:
        kfp_client.get_pipeline(again.pipeline_id)
    assert error.value.status == 404


def _archive(kind: str, name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("README.md", "not the pipeline")
            archive.writestr(name, content)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@pytest.mark.parametrize(("filename", "kind"), [("p.zip", "zip"), ("p.tar.gz", "tar"), ("p.tgz", "tar")])
def test_packages_in_archives_are_accepted(kfp_client: kfp.Client, package: Path, tmp_path: Path,
                                           filename: str, kind: str) -> None:
    path = tmp_path / filename
    path.write_bytes(_archive(kind, "pipeline.yaml", package.read_bytes()))
    pipeline = kfp_client.upload_pipeline(str(path), pipeline_name=f"pl-archive-{kind}-{filename}")
    version, = kfp_client.list_pipeline_versions(pipeline.pipeline_id).pipeline_versions
    spec = kfp_client.get_pipeline_version(pipeline.pipeline_id, version.pipeline_version_id).pipeline_spec
    assert spec["pipelineInfo"]["name"] == "adder"


@pytest.mark.parametrize(("filename", "expected"), [
    ("empty_file.yaml", "empty_file.yaml: empty file, no pipeline spec"),
    ("invalid_yaml.yaml", "invalid_yaml.yaml: root.dag.tasks.echo: component 'comp-echo' is not defined"),
    ("no_name.yaml", "no_name.yaml: pipelineInfo.name is missing or empty"),
])
def test_every_invalid_compat_file_is_rejected_with_a_clear_400(api: httpx.Client, filename: str,
                                                               expected: str) -> None:
    content = (INVALID / filename).read_bytes()
    response = api.post("/pipelines/upload", params={"name": f"bad-{filename}"},
                        files={"uploadfile": (filename, content)})
    assert response.status_code == 400
    assert response.json()["message"].startswith(expected), response.json()["message"]
    # nothing was created
    named = json.dumps({"predicates": [{"operation": 1, "key": "name", "string_value": f"bad-{filename}"}]})
    assert "pipelines" not in api.get("/pipelines", params={"filter": named}).json()


def test_covers_every_file_in_the_invalid_set() -> None:
    assert sorted(p.name for p in INVALID.iterdir()) == ["empty_file.yaml", "invalid_yaml.yaml", "no_name.yaml"]


@pytest.mark.parametrize(("files", "params", "expected"), [
    (None, {"name": "x"}, "no pipeline file: send it as the multipart/form-data field 'uploadfile'"),
    ({"file": ("p.yaml", b"{}")}, {"name": "x"}, "no pipeline file"),
    ({"uploadfile": ("p.txt", b"hello")}, {"name": "x"}, "p.txt: unsupported package type"),
    ({"uploadfile": ("p.zip", b"not a zip")}, {"name": "x"}, "p.zip: not a valid zip archive"),
    ({"uploadfile": ("p.yaml", b"a: [unclosed")}, {"name": "x"}, "p.yaml: not valid YAML"),
    ({"uploadfile": ("p.yaml", b"- just\n- a list\n")}, {"name": "x"}, "p.yaml: not a pipeline spec"),
    ({"uploadfile": ("p.yaml", b"{}")}, {"name": "x", "tags": "[1]"}, "tags must be a JSON object"),
])
def test_bad_uploads_are_400(api: httpx.Client, files: dict | None, params: dict, expected: str) -> None:
    response = api.post("/pipelines/upload", params=params, files=files)
    assert response.status_code == 400
    assert expected in response.json()["message"]


def test_yaml_aliases_are_refused(api: httpx.Client, package: Path) -> None:
    """Compiled pipelines never use aliases, and nested ones can expand a small upload without bound."""
    bomb = package.read_bytes() + ALIAS_BOMB
    response = api.post("/pipelines/upload", params={"name": "pl-bomb"}, files={"uploadfile": ("bomb.yaml", bomb)})
    assert response.status_code == 400
    assert response.json()["message"].startswith("bomb.yaml: YAML aliases are not allowed in pipeline files (the "
                                                 "node anchored at line "), response.json()["message"]


def test_upload_version_needs_an_existing_pipeline(api: httpx.Client, package: Path) -> None:
    files = {"uploadfile": ("adder.yaml", package.read_bytes())}
    missing = api.post("/pipelines/upload_version", params={"name": "v"}, files=files)
    assert missing.status_code == 400 and "pipelineid is required" in missing.json()["message"]
    unknown = api.post("/pipelines/upload_version", params={"name": "v", "pipelineid": "nope"}, files=files)
    assert unknown.status_code == 404


def test_names_are_unique(api: httpx.Client, package: Path) -> None:
    files = {"uploadfile": ("adder.yaml", package.read_bytes())}
    first = api.post("/pipelines/upload", params={"name": "pl-unique"}, files=files)
    assert first.status_code == 200
    assert api.post("/pipelines/upload", params={"name": "pl-unique"}, files=files).status_code == 409
    pipeline_id = first.json()["pipeline_id"]
    version = api.post("/pipelines/upload_version", params={"name": "pl-unique", "pipelineid": pipeline_id},
                       files=files)
    assert version.status_code == 409 and "pl-unique" in version.json()["message"]


def test_upload_name_defaults_to_the_file_name(api: httpx.Client, package: Path) -> None:
    response = api.post("/pipelines/upload", files={"uploadfile": ("my-flow.yaml", package.read_bytes())})
    assert response.status_code == 200
    assert response.json()["name"] == "my-flow"
    assert api.get("/pipelines/names/my-flow").json()["pipeline_id"] == response.json()["pipeline_id"]
    assert api.get("/pipelines/names/no-such-flow").status_code == 404


def test_create_pipeline_then_versions_from_inline_spec(api: httpx.Client, package: Path) -> None:
    spec = yaml.safe_load(package.read_text())
    pipeline = api.post("/pipelines", json={"name": "pl-inline", "displayName": "Inline"}).json()
    assert (pipeline["name"], pipeline["display_name"]) == ("pl-inline", "Inline")
    pipeline_id = pipeline["pipeline_id"]

    version = api.post(f"/pipelines/{pipeline_id}/versions", json={"name": "v1", "pipeline_spec": spec})
    assert version.status_code == 200
    assert version.json()["pipeline_spec"] == spec
    bad = api.post(f"/pipelines/{pipeline_id}/versions", json={"name": "v2", "pipeline_spec": {"root": {}}})
    assert bad.status_code == 400 and "pipelineInfo" in bad.json()["message"]
    neither = api.post(f"/pipelines/{pipeline_id}/versions", json={"name": "v3"})
    assert neither.status_code == 400 and "pipeline_spec or package_url" in neither.json()["message"]
    other = api.post(f"/pipelines/{pipeline_id}/versions", json={"name": "v4", "pipeline_id": "other",
                                                                 "pipeline_spec": spec})
    assert other.status_code == 400


def test_a_platform_spec_is_kept_with_the_version(api: httpx.Client) -> None:
    spec, platform = yaml.safe_load_all(WITH_PLATFORM_SPEC.read_text())
    response = api.post("/pipelines/upload", params={"name": "pl-volume"},
                        files={"uploadfile": (WITH_PLATFORM_SPEC.name, WITH_PLATFORM_SPEC.read_bytes())})
    assert response.status_code == 200
    pipeline_id = response.json()["pipeline_id"]
    version_id = api.get(f"/pipelines/{pipeline_id}/versions").json()["pipeline_versions"][0]["pipeline_version_id"]
    stored = api.get(f"/pipelines/{pipeline_id}/versions/{version_id}").json()["pipeline_spec"]
    assert stored == {"pipeline_spec": spec, "platform_spec": platform}


@pytest.fixture
def package_server(package: Path) -> Iterator[str]:
    """An HTTP server on localhost serving the package's directory; yields its base URL."""
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(package.parent))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_create_pipeline_and_version_from_a_package_url(api: httpx.Client, kfp_client: kfp.Client,
                                                        package_server: str) -> None:
    body = {"pipeline": {"name": "pl-url"},
            "pipeline_version": {"package_url": {"pipeline_url": f"{package_server}/adder.yaml"}}}
    response = api.post("/pipelines/create", json=body)
    assert response.status_code == 200, response.text
    pipeline_id = response.json()["pipeline_id"]
    version, = kfp_client.list_pipeline_versions(pipeline_id).pipeline_versions
    assert version.name == "pl-url"

    missing = api.post("/pipelines/create", json={
        "pipeline": {"name": "pl-url-missing"},
        "pipeline_version": {"package_url": {"pipeline_url": f"{package_server}/missing.yaml"}}})
    assert missing.status_code == 400 and "404" in missing.json()["message"]
    assert kfp_client.get_pipeline_id("pl-url-missing") is None


def test_unknown_pipelines_and_versions_are_404(api: httpx.Client) -> None:
    for method, path in [("GET", "/pipelines/nope"), ("DELETE", "/pipelines/nope"),
                         ("GET", "/pipelines/nope/versions"), ("GET", "/pipelines/nope/versions/v"),
                         ("DELETE", "/pipelines/nope/versions/v")]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == 5
