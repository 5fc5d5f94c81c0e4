"""`packages_to_install` that this environment lacks: a cached virtual environment is built once and reused.

The package is a wheel the test writes itself, so nothing is downloaded.
"""

import base64
import hashlib
import zipfile
from pathlib import Path

from kfp import dsl

from flowdeck.pipelines.api import run_pipeline
from flowdeck.pipelines.engine import Listener

PACKAGE = "flowdeck_demo_pkg"


def make_wheel(directory: Path, value: str) -> Path:
    """A minimal, valid pure-Python wheel whose module holds VALUE = value."""
    wheel = directory / f"{PACKAGE}-1.0-py3-none-any.whl"
    dist_info = f"{PACKAGE}-1.0.dist-info"
    files = {
        f"{PACKAGE}.py": f"VALUE = {value!r}\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: 1.0\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


class Messages(Listener):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def demo_pipeline(wheel: Path):
    @dsl.component(base_image="python:3.11", packages_to_install=[str(wheel)])
    def read_value() -> str:
        import flowdeck_demo_pkg

        return flowdeck_demo_pkg.VALUE

    @dsl.pipeline(name="venv-demo")
    def pipeline() -> str:
        return read_value().output

    return pipeline


def test_missing_package_is_installed_once_into_a_reused_venv(settings, tmp_path: Path) -> None:
    pipeline = demo_pipeline(make_wheel(tmp_path, "from the wheel"))

    first_listener = Messages()
    first = run_pipeline(pipeline, settings=settings, listener=first_listener, enable_caching=False)
    assert first["state"] == "SUCCEEDED", first["error"]
    assert first["outputs"] == {"Output": "from the wheel"}
    assert any("installing" in m and PACKAGE in m for m in first_listener.messages), first_listener.messages
    venvs = [p for p in settings.venv_cache_dir.iterdir() if p.is_dir()]
    assert len(venvs) == 1

    second_listener = Messages()
    second = run_pipeline(pipeline, settings=settings, listener=second_listener, enable_caching=False)
    assert second["outputs"] == {"Output": "from the wheel"}
    assert not [m for m in second_listener.messages if "installing" in m], second_listener.messages
    assert [p for p in settings.venv_cache_dir.iterdir() if p.is_dir()] == venvs


def test_package_that_cannot_be_installed_fails_the_task_with_the_log_path(settings, tmp_path: Path) -> None:
    pipeline = demo_pipeline(tmp_path / "missing-1.0-py3-none-any.whl")

    result = run_pipeline(pipeline, settings=settings, listener=Messages())

    assert result["state"] == "FAILED"
    task = next(t for t in result["tasks"] if t["name"] == "read-value")
    assert task["state"] == "FAILED"
    assert "installing" in task["error"] and ".log" in task["error"]
