"""Fixtures for the training tests: a real `flowdeck up` and a client for its job resources."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jobs_api import Jobs

from helpers import start_control_plane


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jobs]:
    # a known training capacity, whatever this machine's CPU count
    server = start_control_plane(tmp_path_factory.mktemp("training") / "home",
                                 env={"FLOWDECK_TRAINING_CPU_CAPACITY": "2"})
    yield Jobs(server, tmp_path_factory.mktemp("documents"))
    assert server.stop() == 0, "\n".join(server.output)
