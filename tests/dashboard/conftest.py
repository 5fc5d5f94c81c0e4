"""Fixtures for dashboard tests: one real single-user `flowdeck up` per module, driven with the real kfp.Client.

`evaluated` is a finished run of `sample_pipelines.evaluation` (metrics, a confusion matrix and ROC
curve, HTML, Markdown and a dataset): what most page tests look at.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import kfp
import pytest

from flowdeck.store import Store, open_store
from helpers import ControlPlane, start_control_plane
from sample_pipelines import evaluation


@pytest.fixture(scope="module")
def dashboard_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard") / "home"


@pytest.fixture(scope="module")
def dashboard(dashboard_home: Path) -> Iterator[ControlPlane]:
    """A single-user control plane for the module (every visitor is the implicit admin)."""
    server = start_control_plane(dashboard_home)
    yield server
    assert server.stop() in (0, -signal.SIGTERM), "\n".join(server.output)


@pytest.fixture(scope="module")
def store(dashboard: ControlPlane, dashboard_home: Path) -> Iterator[Store]:
    """The running dashboard's own database, to write rows into (pages read rows: no execution needed)."""
    opened = open_store(f"sqlite:///{dashboard_home / 'flowdeck.db'}")
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def kfp_client(dashboard: ControlPlane) -> kfp.Client:
    return kfp.Client(host=dashboard.url)


@pytest.fixture(scope="module")
def pages(dashboard: ControlPlane) -> Iterator[httpx.Client]:
    """HTTP to the dashboard, as a browser asks for pages."""
    with httpx.Client(base_url=dashboard.url, headers={"Accept": "text/html"}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def evaluated(kfp_client: kfp.Client) -> str:
    """The id of a SUCCEEDED run of `evaluation` (learning_rate 0.1)."""
    run = kfp_client.create_run_from_pipeline_func(evaluation, arguments={"learning_rate": 0.1},
                                                   run_name="evaluation 0.1", experiment_name="dashboard")
    finished = kfp_client.wait_for_run_completion(run.run_id, timeout=120)
    assert finished.state == "SUCCEEDED", finished
    return run.run_id
