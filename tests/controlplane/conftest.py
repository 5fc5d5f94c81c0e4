"""Fixtures for control-plane tests: real `flowdeck up` processes, and clients pointed at them.

`control_plane` is a factory: `control_plane(env={...}, args=[...])` starts `flowdeck up --port 0`
in its own FLOWDECK_HOME (or the `home` given) and returns a `ControlPlane` (url, process, output);
every server it started is stopped with SIGTERM (SIGKILL if it hangs) when the test ends. Pass
`env` for settings such as FLOWDECK_TOKEN or FLOWDECK_DATABASE_URL.

`kfp_server` is one server shared by a test module (most tests only add objects of their own), with
`kfp_client` (the real `kfp.Client`) and `api` (raw httpx, for error cases the client cannot send).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import kfp
import pytest
import yaml
from kfp import compiler

from helpers import ControlPlane, StartControlPlane, start_control_plane
from sample_pipelines import adder


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[StartControlPlane]:
    """Start `flowdeck up` processes for one test: `control_plane(env=None, args=(), home=None)`."""
    started: list[ControlPlane] = []

    def start(env: dict[str, str] | None = None, args: Sequence[str] = (), home: Path | None = None) -> ControlPlane:
        server = start_control_plane(home or tmp_path / f"home-{len(started)}", env=env, args=args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def kfp_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """FLOWDECK_HOME of the module's `kfp_server` (its SQLite database lives there)."""
    return tmp_path_factory.mktemp("control-plane") / "home"


@pytest.fixture(scope="module")
def kfp_server(kfp_home: Path) -> Iterator[ControlPlane]:
    """One control plane for the whole test module, in a fresh home."""
    server = start_control_plane(kfp_home)
    yield server
    # uvicorn re-raises the SIGTERM it handled once shut down, so a clean stop may read as -SIGTERM
    assert server.stop() in (0, -signal.SIGTERM), "\n".join(server.output)


@pytest.fixture(scope="module")
def kfp_client(kfp_server: ControlPlane) -> kfp.Client:
    return kfp.Client(host=kfp_server.url)


@pytest.fixture(scope="module")
def api(kfp_server: ControlPlane) -> Iterator[httpx.Client]:
    """Raw HTTP to the server's KFP API (base URL .../apis/v2beta1)."""
    with httpx.Client(base_url=f"{kfp_server.url}/apis/v2beta1", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sample_pipelines.adder` compiled by kfp to adder.yaml."""
    path = tmp_path_factory.mktemp("packages") / "adder.yaml"
    compiler.Compiler().compile(adder, str(path))
    return path


@pytest.fixture(scope="module")
def spec(package: Path) -> dict[str, Any]:
    """The compiled `adder` spec, as a dict."""
    return yaml.safe_load(package.read_text())
