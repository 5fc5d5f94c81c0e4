"""Conformance suite for `ArtifactStore`, run against every backend we can run here.

Each test takes the `store` fixture, parametrized over a local directory root and fsspec's in-memory
filesystem (`memory://`), so the local fast path and the fsspec path must behave the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from flowdeck.artifacts import ArtifactStore, resolve_uri

ALL_BYTES = bytes(range(256)) * 64


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "root"))
        return
    name = f"flowdeck-test-{uuid.uuid4().hex}"
    yield ArtifactStore(f"memory://{name}")
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{name}"):
        fs.rm(f"/{name}", recursive=True)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A local scratch directory, separate from any store root."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def make_tree(base: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"alpha",
        "empty.bin": b"",
        "sub/b.bin": ALL_BYTES,
        "sub/deeper/c.json": b'{"k": 1}',
    }
    for rel, data in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def read_tree(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


# -- uri_for / local_path ---------------------------------------------------------------------------


def test_uri_for_is_under_root(store: ArtifactStore) -> None:
    uri = store.uri_for("run-1", "train", "model")
    assert uri.startswith(store.root + "/")
    assert uri.endswith("run-1/train/model")
    assert store.uri_for() == store.root


def test_uri_for_splits_slashes_and_drops_empty_segments(store: ArtifactStore) -> None:
    assert store.uri_for("run-1/train/", "/model", ".", "") == store.uri_for("run-1", "train", "model")


@pytest.mark.parametrize("parts", [("..",), ("a", "../b"), ("a/../../b",)])
def test_uri_for_refuses_parent_segments(store: ArtifactStore, parts: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"\.\."):
        store.uri_for(*parts)


def test_uri_for_local_root_is_plain_absolute_path(tmp_path: Path) -> None:
    for root in (str(tmp_path), tmp_path.as_uri(), f"file://{tmp_path}/"):
        store = ArtifactStore(root)
        uri = store.uri_for("run", "out")
        assert not uri.startswith("file:")
        assert os.path.isabs(uri)
        assert uri == str(tmp_path / "run" / "out")
        assert store.local_path(uri) == uri


def test_relative_local_root_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert ArtifactStore("artifacts").uri_for("x") == str(tmp_path / "artifacts" / "x")


def test_remote_root_keeps_scheme() -> None:
    store = ArtifactStore("memory://bucket/prefix/")
    assert store.root == "memory://bucket/prefix"
    assert store.uri_for("run", "out") == "memory://bucket/prefix/run/out"
    assert ArtifactStore("s3://bucket/prefix").uri_for("a", "b") == "s3://bucket/prefix/a/b"


def test_local_path(store: ArtifactStore, tmp_path: Path) -> None:
    uri = store.uri_for("x")
    if store.root.startswith("memory://"):
        assert store.local_path(uri) is None
    else:
        assert store.local_path(uri) == uri
    assert store.local_path(str(tmp_path / "f")) == str(tmp_path / "f")
    assert store.local_path((tmp_path / "f").as_uri()) == str(tmp_path / "f")
    assert store.local_path("s3://bucket/key") is None


def test_empty_root_is_refused() -> None:
    with pytest.raises(ValueError):
        ArtifactStore("")


# -- resolve_uri -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///abs/path", "/abs/path"),
        ("file://localhost/abs/path", "/abs/path"),
        ("local:///abs/path", "/abs/path"),
        ("/abs/path", "/abs/path"),
        ("relative/path", "relative/path"),
        ("s3://bucket/key", "s3://bucket/key"),
        ("gs://bucket/key", "gs://bucket/key"),
        ("memory://x/y", "memory://x/y"),
    ],
)
def test_resolve_uri(uri: str, expected: str) -> None:
    assert resolve_uri(uri) == expected


# -- put / get -------------------------------------------------------------------------------------


def test_put_get_file_round_trips_bytes(store: ArtifactStore, work: Path) -> None:
    src = work / "in.bin"
    src.write_bytes(ALL_BYTES)
    uri = store.uri_for("run", "task", "out.bin")
    assert store.put(src, uri) == uri
    assert store.exists(uri)
    dst = work / "fetched" / "nested" / "out.bin"
    assert store.get(uri, dst) == str(dst)
    assert dst.read_bytes() == ALL_BYTES


def test_put_file_overwrites(store: ArtifactStore, work: Path) -> None:
    uri = store.uri_for("f")
    src = work / "f"
    src.write_bytes(b"first version, longer")
    store.put(src, uri)
    src.write_bytes(b"second")
    store.put(str(src), uri)
    with store.open(uri) as f:
        assert f.read() == b"second"


def test_put_get_directory_recursively(store: ArtifactStore, work: Path) -> None:
    files = make_tree(work / "tree")
    uri = store.uri_for("run", "dataset")
    store.put(work / "tree", uri)
    assert store.exists(uri)
    assert store.exists(store.uri_for("run", "dataset", "sub", "deeper", "c.json"))
    store.get(uri, work / "back")
    assert read_tree(work / "back") == files


def test_put_directory_merges_into_existing(store: ArtifactStore, work: Path) -> None:
    uri = store.uri_for("d")
    (work / "one").mkdir()
    (work / "one" / "a").write_bytes(b"1")
    (work / "one" / "b").write_bytes(b"old")
    store.put(work / "one", uri)
    (work / "two").mkdir()
    (work / "two" / "b").write_bytes(b"new")
    store.put(work / "two", uri)
    store.get(uri, work / "out")
    assert read_tree(work / "out") == {"a": b"1", "b": b"new"}


def test_get_directory_into_existing_local_directory(store: ArtifactStore, work: Path) -> None:
    files = make_tree(work / "tree")
    uri = store.uri_for("d")
    store.put(work / "tree", uri)
    (work / "out").mkdir()
    (work / "out" / "keep").write_bytes(b"k")
    store.get(uri, work / "out")
    assert read_tree(work / "out") == {**files, "keep": b"k"}


def test_get_leaves_no_temporary_files(store: ArtifactStore, work: Path) -> None:
    files = make_tree(work / "tree")
    store.put(work / "tree", store.uri_for("d"))
    store.get(store.uri_for("d"), work / "out")
    assert sorted(read_tree(work / "out")) == sorted(files)
    assert store.list(store.uri_for("d")) == sorted(store.uri_for("d", rel) for rel in files)


def test_put_missing_source_names_it(store: ArtifactStore, work: Path) -> None:
    missing = work / "nope.bin"
    with pytest.raises(FileNotFoundError) as info:
        store.put(missing, store.uri_for("x"))
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)
    assert not store.exists(store.uri_for("x"))


def test_get_missing_uri_names_it(store: ArtifactStore, work: Path) -> None:
    uri = store.uri_for("run", "missing.bin")
    with pytest.raises(FileNotFoundError) as info:
        store.get(uri, work / "out.bin")
    assert info.value.filename == uri
    assert uri in str(info.value)
    assert not (work / "out.bin").exists()


# -- open ------------------------------------------------------------------------------------------


def test_open_write_then_read_bytes(store: ArtifactStore) -> None:
    uri = store.uri_for("run", "new", "dir", "blob.bin")
    with store.open(uri, "wb") as f:
        f.write(ALL_BYTES)
    assert store.exists(uri)
    with store.open(uri, "rb") as f:
        assert f.read() == ALL_BYTES
    with store.open(uri) as f:
        assert f.read(3) == ALL_BYTES[:3]


def test_open_text_is_utf8(store: ArtifactStore) -> None:
    uri = store.uri_for("notes.txt")
    text = "naïve café ✓\nline 2\n"
    with store.open(uri, "w") as f:
        f.write(text)
    with store.open(uri, "r") as f:
        assert f.read() == text
    with store.open(uri, "rb") as f:
        assert f.read() == text.encode("utf-8")


def test_open_write_then_get(store: ArtifactStore, work: Path) -> None:
    uri = store.uri_for("metrics.json")
    with store.open(uri, "wb") as f:
        f.write(b'{"acc": 0.9}')
    store.get(uri, work / "m.json")
    assert (work / "m.json").read_bytes() == b'{"acc": 0.9}'


def test_put_then_open(store: ArtifactStore, work: Path) -> None:
    (work / "x").write_bytes(b"payload")
    uri = store.uri_for("x")
    store.put(work / "x", uri)
    with store.open(uri, "rb") as f:
        assert f.read() == b"payload"


def test_open_missing_names_uri(store: ArtifactStore) -> None:
    uri = store.uri_for("does", "not", "exist")
    for mode in ("rb", "r"):
        with pytest.raises(FileNotFoundError) as info:
            store.open(uri, mode)
        assert info.value.filename == uri
        assert uri in str(info.value)


# -- exists / list ---------------------------------------------------------------------------------


def test_exists(store: ArtifactStore, work: Path) -> None:
    make_tree(work / "tree")
    store.put(work / "tree", store.uri_for("d"))
    assert store.exists(store.uri_for("d"))
    assert store.exists(store.uri_for("d", "sub"))
    assert store.exists(store.uri_for("d", "a.txt"))
    assert store.exists(store.uri_for("d", "empty.bin"))
    assert not store.exists(store.uri_for("d", "zzz"))
    assert not store.exists(store.uri_for("elsewhere"))


def test_list_is_recursive_sorted_files_only(store: ArtifactStore, work: Path) -> None:
    files = make_tree(work / "tree")
    store.put(work / "tree", store.uri_for("run", "d"))
    with store.open(store.uri_for("run", "other"), "wb") as f:
        f.write(b"o")
    listed = store.list(store.uri_for("run", "d"))
    assert listed == sorted(store.uri_for("run", "d", rel) for rel in files)
    assert store.list(store.uri_for("run", "d") + "/") == listed
    assert store.list(store.uri_for("run")) == sorted([*listed, store.uri_for("run", "other")])
    for uri in listed:  # listed URIs are usable as artifact URIs
        with store.open(uri) as f:
            assert f.read() == files[uri[len(store.uri_for("run", "d")) + 1 :]]


def test_list_missing_prefix_is_empty(store: ArtifactStore) -> None:
    assert store.list(store.uri_for("nothing", "here")) == []


def test_list_of_a_file_is_that_file(store: ArtifactStore) -> None:
    uri = store.uri_for("one.bin")
    with store.open(uri, "wb") as f:
        f.write(b"1")
    assert store.list(uri) == [uri]


# -- local specifics -------------------------------------------------------------------------------


def test_local_store_accepts_file_uris(tmp_path: Path, work: Path) -> None:
    store = ArtifactStore(tmp_path.as_uri() + "/root")
    (work / "f").write_bytes(b"data")
    uri = store.uri_for("f")
    store.put(work / "f", Path(uri).as_uri())
    assert Path(uri).read_bytes() == b"data"
    assert store.exists(Path(uri).as_uri())
    assert store.list(Path(uri).parent.as_uri()) == [uri]
    with pytest.raises(FileNotFoundError) as info:
        store.get(Path(uri + "x").as_uri(), work / "g")
    assert info.value.filename == Path(uri + "x").as_uri()


def test_local_put_onto_itself_is_a_no_op(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    uri = store.uri_for("out.bin")
    Path(uri).write_bytes(b"written in place by the task")
    store.put(uri, uri)
    assert Path(uri).read_bytes() == b"written in place by the task"


def test_local_put_directory_into_itself_is_refused(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    make_tree(tmp_path / "d")
    with pytest.raises(ValueError, match="into itself"):
        store.put(tmp_path / "d", store.uri_for("d", "inner"))


def test_local_put_keeps_file_mode(tmp_path: Path, work: Path) -> None:
    script = work / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    store = ArtifactStore(str(tmp_path / "root"))
    store.put(script, store.uri_for("run.sh"))
    assert os.access(store.uri_for("run.sh"), os.X_OK)


def test_local_store_does_not_import_fsspec(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from flowdeck.artifacts import ArtifactStore\n"
        f"s = ArtifactStore({str(tmp_path)!r})\n"
        "u = s.uri_for('a', 'b')\n"
        "with s.open(u, 'wb') as f: f.write(b'x')\n"
        "assert s.exists(u) and s.list(s.root) == [u]\n"
        "s.get(u, u + '.copy')\n"
        "assert 'fsspec' not in sys.modules, 'fsspec imported on the local path'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
