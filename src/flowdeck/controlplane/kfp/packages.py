"""Pipeline packages as KFP accepts them: a compiled YAML, or a .zip/.tar.gz/.tgz holding one.

Uploads (`uploadfile`) and `package_url` downloads both arrive here as a file name and bytes. The
YAML inside is read and validated with the engine's own loader, so a package that would fail to run
is rejected at upload with the loader's message (which names the file and the field), and YAML
aliases (which can expand a small file into gigabytes) are refused there.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlparse

import httpx

from flowdeck.pipelines.errors import PipelineError
from flowdeck.pipelines.spec import Pipeline, from_documents, load_documents

#: KFP's default upload limit.
MAX_PACKAGE_BYTES = 32 * 1024 * 1024
YAML_SUFFIXES = (".yaml", ".yml", ".json")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")


def package_name(filename: str) -> str:
    """The file name without its package suffix: KFP's default pipeline name for an upload."""
    name = PurePosixPath(filename).name
    for suffix in YAML_SUFFIXES + ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _from_archive(filename: str, data: bytes) -> tuple[str, bytes]:
    """(member name, content) of the pipeline YAML in an archive: pipeline.yaml, or its only YAML file."""
    try:
        if filename.lower().endswith(".zip"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = {i.filename: i for i in archive.infolist() if not i.is_dir()}
                chosen = _choose(filename, list(members))
                if members[chosen].file_size > MAX_PACKAGE_BYTES:
                    raise PipelineError(f"{filename}: {chosen} is larger than {MAX_PACKAGE_BYTES} bytes")
                return chosen, archive.read(chosen)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            files = {m.name: m for m in archive.getmembers() if m.isfile()}
            chosen = _choose(filename, list(files))
            if files[chosen].size > MAX_PACKAGE_BYTES:
                raise PipelineError(f"{filename}: {chosen} is larger than {MAX_PACKAGE_BYTES} bytes")
            handle = archive.extractfile(files[chosen])
            return chosen, handle.read() if handle is not None else b""
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        kind = "zip" if filename.lower().endswith(".zip") else "gzipped tar"
        raise PipelineError(f"{filename}: not a valid {kind} archive ({exc})") from None


def _choose(filename: str, names: list[str]) -> str:
    candidates = [n for n in names if n.lower().endswith((".yaml", ".yml"))
                  and not PurePosixPath(n).name.startswith("._") and "__MACOSX" not in n]
    for name in candidates:
        if PurePosixPath(name).name == "pipeline.yaml":
            return name
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise PipelineError(f"{filename}: the archive holds no pipeline YAML file")
    raise PipelineError(f"{filename}: the archive holds several YAML files and none is named pipeline.yaml")


def parse_package(filename: str, data: bytes) -> Pipeline:
    """The validated pipeline in a package file; raises `PipelineError` naming the file and the problem."""
    lowered = filename.lower()
    if not lowered.endswith(YAML_SUFFIXES + ARCHIVE_SUFFIXES):
        raise PipelineError(f"{filename}: unsupported package type; upload a compiled pipeline "
                            ".yaml/.yml (or .json), or a .zip/.tar.gz/.tgz that holds one")
    if len(data) > MAX_PACKAGE_BYTES:
        raise PipelineError(f"{filename}: larger than {MAX_PACKAGE_BYTES} bytes")
    source = filename
    if lowered.endswith(ARCHIVE_SUFFIXES):
        member, data = _from_archive(filename, data)
        source = f"{filename}:{member}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(f"{source}: not UTF-8 text") from None
    return from_documents(load_documents(text, source), source)


def parse_spec(spec: dict[str, Any], source: str = "pipeline_spec") -> Pipeline:
    """The validated pipeline of an inline `pipeline_spec` Struct (bare, or {pipeline_spec, platform_spec})."""
    if not spec:
        raise PipelineError(f"{source}: empty")
    return from_documents([spec], source)


def fetch_package(url: str) -> tuple[str, bytes]:
    """Download a package from an http(s) `package_url`; returns (file name, content)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PipelineError(f"package_url {url!r}: only http:// and https:// URLs can be fetched")
    try:
        with httpx.stream("GET", url, timeout=30.0, follow_redirects=True) as response:
            if response.status_code != 200:
                raise PipelineError(f"package_url {url!r}: the server answered {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_PACKAGE_BYTES:
                    raise PipelineError(f"package_url {url!r}: larger than {MAX_PACKAGE_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise PipelineError(f"package_url {url!r}: cannot download it: {exc}") from None
    return PurePosixPath(parsed.path).name or "pipeline.yaml", b"".join(chunks)
