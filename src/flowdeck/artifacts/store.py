"""`ArtifactStore`: put, get, open, list and name artifacts by URI, on a local disk or over fsspec.

Tasks exchange data only through artifact URIs (and parameters recorded in the metadata store), never
through a path that happens to exist on one machine. That is what lets the same run move from a laptop
to Kubernetes: point the root at `s3://bucket/prefix` (or `gs://`, or any fsspec URI) and every task,
wherever its pod lands, reads and writes the same objects.

Local URIs (plain paths, `file://` and `local://`) are served with `os` and `shutil` directly, and
fsspec is imported only when a non-local URI is first used: the local default is on the per-task hot
path, and importing fsspec alone costs tens of milliseconds.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

StrPath = str | os.PathLike[str]

_LOCAL_PROTOCOLS = ("file", "local")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def _protocol(uri: str) -> str | None:
    """The URI's scheme (`s3`, `memory`, `file`...), or None for a plain path (also `C:\\...`)."""
    if "::" in uri:  # fsspec chained URL such as `simplecache::s3://...`: never local
        return uri.split("::", 1)[0].split("://", 1)[0] or None
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def resolve_uri(uri: str) -> str:
    """Turn a local `file://` (or `local://`) URI into a plain path; return any other URI unchanged.

    `file:///abs/path` becomes `/abs/path` (`file://localhost/abs/path` too). As in fsspec, the rest
    of the URI is taken literally: no percent-decoding. Plain paths and remote URIs come back as given.
    """
    protocol = _protocol(uri)
    if protocol not in _LOCAL_PROTOCOLS:
        return uri
    path = uri.split("://", 1)[1]
    if path.startswith("localhost/"):
        path = path[len("localhost") :]
    if os.name == "nt" and re.match(r"^/[A-Za-z]:", path):  # file:///C:/x -> C:/x
        path = path[1:]
    return path


def is_local(uri: str) -> bool:
    """True for plain paths and `file://`/`local://` URIs: things this machine reads without fsspec."""
    return _protocol(uri) in (None, *_LOCAL_PROTOCOLS)


def _local_path(uri: str) -> str | None:
    if _protocol(uri) not in (None, *_LOCAL_PROTOCOLS):
        return None
    return os.path.abspath(os.path.expanduser(resolve_uri(uri)))


def _missing(what: str, name: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, what, name)


def _writes(mode: str) -> bool:
    return any(flag in mode for flag in "wax+")


class ArtifactStore:
    """Artifacts under one root: a local directory, a `file://` URI, or any fsspec URI.

    `ArtifactStore("/data/artifacts")`, `ArtifactStore("file:///data/artifacts")`,
    `ArtifactStore("s3://bucket/prefix", storage_options={"anon": False})`,
    `ArtifactStore("memory://artifacts")` (tests).

    For a local root, `uri_for` returns a plain absolute path, never a `file://` URI: KFP's Python
    executor treats an artifact URI that is a bare absolute path as the path to read and write, and
    does not strip `file://`, so a `file://` URI would make a component write to a relative directory
    named `file:`. Remote roots keep their scheme (`s3://bucket/prefix/run/task/out`); KFP's executor
    maps `s3://`, `gs://` and `minio://` URIs to its `/s3/`, `/gcs/` and `/minio/` mount paths.

    Every method takes any URI, not only those under the root: plain paths and `file://` URIs are
    local, anything else goes through fsspec (with `storage_options` when its scheme is the root's).
    Directories are copied recursively; copying onto an existing directory merges into it,
    overwriting files of the same name. A missing source raises `FileNotFoundError` naming the URI.
    """

    def __init__(self, root: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
        root = os.fspath(root)
        if not root:
            raise ValueError("artifact root must not be empty")
        self._storage_options = dict(storage_options or {})
        local = _local_path(root)
        self._local = local is not None
        self._root = local if local is not None else root.rstrip("/")
        self._protocol = _protocol(root)

    @property
    def root(self) -> str:
        """The root: an absolute path for a local store, else the URI as given (no trailing `/`)."""
        return self._root

    def __repr__(self) -> str:
        return f"ArtifactStore({self._root!r})"

    def uri_for(self, *parts: str) -> str:
        """A URI under the root, from path parts (`uri_for("run-1", "train", "model")`).

        Parts may contain `/`; empty and `.` segments are dropped, and `..` is refused so a URI never
        leaves the root. Local roots give plain absolute paths (see the class docstring).
        """
        segments: builtins.list[str] = []
        for part in parts:
            for segment in str(part).split("/"):
                if segment == "..":
                    raise ValueError(f"artifact URI parts must not contain '..': {parts!r}")
                if segment and segment != ".":
                    segments.append(segment)
        if self._local:
            return os.path.join(self._root, *segments)
        return "/".join([self._root, *segments])

    def local_path(self, uri: str) -> str | None:
        """The absolute local path for a plain path or `file://` URI; None for a remote URI."""
        return _local_path(uri)

    def exists(self, uri: str) -> bool:
        """Whether a file or directory exists at the URI."""
        local = _local_path(uri)
        if local is not None:
            return os.path.exists(local)
        fs, path = self._fs(uri)
        return bool(fs.exists(path))

    def put(self, local_path: StrPath, uri: str) -> str:
        """Copy a local file, or a directory recursively, to the URI; returns the URI.

        For a directory, the URI becomes that directory (its contents land directly under it).
        """
        src = os.path.abspath(os.fspath(local_path))
        if not os.path.exists(src):
            raise _missing("No such file or directory to put", os.fspath(local_path))
        dst = _local_path(uri)
        if dst is not None:
            _copy_local(src, dst)
            return uri
        fs, path = self._fs(uri)
        if os.path.isfile(src):
            parent = path.rsplit("/", 1)[0]
            if parent and parent != path:
                fs.makedirs(parent, exist_ok=True)
            fs.put_file(src, path)
            return uri
        for dirpath, _dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            base = path if rel == "." else f"{path}/{rel.replace(os.sep, '/')}"
            fs.makedirs(base, exist_ok=True)
            for name in filenames:
                fs.put_file(os.path.join(dirpath, name), f"{base}/{name}")
        return uri

    def get(self, uri: str, local_path: StrPath) -> str:
        """Copy the file, or directory recursively, at the URI to a local path; returns that path."""
        dst = os.path.abspath(os.fspath(local_path))
        src = _local_path(uri)
        if src is not None:
            if not os.path.exists(src):
                raise _missing("No such artifact", uri)
            _copy_local(src, dst)
            return dst
        fs, path = self._fs(uri)
        if fs.isfile(path):
            _download(fs, path, dst)
        elif fs.isdir(path):
            prefix = path.rstrip("/") + "/"
            os.makedirs(dst, exist_ok=True)
            for name, info in sorted(fs.find(path, withdirs=True, detail=True).items()):
                rel = name[len(prefix) :] if name.startswith(prefix) else ""
                if not rel:
                    continue
                target = os.path.join(dst, *rel.split("/"))
                if info["type"] == "directory":
                    os.makedirs(target, exist_ok=True)
                else:
                    _download(fs, name, target)
        else:
            raise _missing("No such artifact", uri)
        return dst

    def open(self, uri: str, mode: str = "rb") -> IO[Any]:
        """Open the file at the URI; writing creates missing parent directories.

        Text modes use UTF-8. Reading a missing file raises `FileNotFoundError` naming the URI.
        """
        encoding = None if "b" in mode else "utf-8"
        local = _local_path(uri)
        try:
            if local is not None:
                if _writes(mode):
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                return builtins.open(local, mode, encoding=encoding)
            fs, path = self._fs(uri)
            if _writes(mode):
                parent = path.rsplit("/", 1)[0]
                if parent and parent != path:
                    fs.makedirs(parent, exist_ok=True)
            kwargs = {} if encoding is None else {"encoding": encoding}
            return fs.open(path, mode, **kwargs)  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise _missing("No such artifact", uri) from exc

    def list(self, prefix_uri: str) -> builtins.list[str]:
        """URIs of all files under a prefix, recursively and sorted; `[]` when nothing is there.

        Like an object store, this lists files only (not directories). A prefix naming a file gives
        `[prefix_uri]`. Local results are absolute paths; remote ones extend `prefix_uri`.
        """
        local = _local_path(prefix_uri)
        if local is not None:
            if os.path.isfile(local):
                return [local]
            out = [
                os.path.join(dirpath, name)
                for dirpath, _dirnames, filenames in os.walk(local)
                for name in filenames
            ]
            return sorted(out)
        fs, path = self._fs(prefix_uri)
        if fs.isfile(path):
            return [prefix_uri]
        base = prefix_uri.rstrip("/")
        prefix = path.rstrip("/") + "/"
        return sorted(f"{base}/{name[len(prefix) :]}" for name in fs.find(path) if name.startswith(prefix))

    def _fs(self, uri: str) -> tuple[AbstractFileSystem, str]:
        from fsspec.core import url_to_fs

        options = self._storage_options if _protocol(uri) == self._protocol else {}
        return url_to_fs(uri, **options)  # type: ignore[no-any-return]


def _copy_local(src: str, dst: str) -> None:
    """Copy a local file or tree onto `dst` (a tree merges into an existing directory)."""
    if src == dst:
        return
    if os.path.isfile(src):
        _copy_file(src, dst)
        return
    if dst.startswith(src.rstrip(os.sep) + os.sep):
        raise ValueError(f"cannot copy directory {src!r} into itself ({dst!r})")
    for dirpath, _dirnames, filenames in os.walk(src):
        target = os.path.join(dst, os.path.relpath(dirpath, src))
        os.makedirs(target, exist_ok=True)
        for name in filenames:
            _copy_file(os.path.join(dirpath, name), os.path.join(target, name))


def _copy_file(src: str, dst: str) -> None:
    """Copy one file so that readers never see a half-written `dst`."""
    _write_aside(dst, lambda tmp: shutil.copy2(src, tmp))


def _download(fs: AbstractFileSystem, path: str, dst: str) -> None:
    _write_aside(dst, lambda tmp: fs.get_file(path, tmp))


def _write_aside(dst: str, write: Callable[[str], object]) -> None:
    """Let `write` fill a temporary file beside `dst`, then rename it into place (or remove it on failure)."""
    parent = os.path.dirname(dst)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(dst)}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
