"""`flowdeck profiles ...` against a real `flowdeck up`: a cluster admin creates a profile with a quota,
its owner adds and removes a contributor, and `-n` defaults to the namespace in the user's config."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts import add_users
from helpers import ControlPlane, start_control_plane


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, dict[str, str]]]:
    home = tmp_path_factory.mktemp("profiles-cli") / "home"
    minted = add_users(home, admins=("root",), users=("alice", "carol"))
    plane = start_control_plane(home)
    yield plane, minted
    assert plane.stop() in (0, -signal.SIGTERM), "\n".join(plane.output)


def flowdeck(server, user: str, *args: str, config: Path) -> subprocess.CompletedProcess[str]:
    plane, minted = server
    env = {**os.environ, "FLOWDECK_URL": plane.url, "FLOWDECK_TOKEN": minted[user], "FLOWDECK_CONFIG": str(config)}
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_profiles_create_list_get_and_contributors(server, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    created = flowdeck(server, "root", "profiles", "create", "team-a", "--owner", "alice", "--cpu", "2",
                       "--memory", "4Gi", "--max-workloads", "3", config=config)
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "profile team-a created, owned by alice"
    again = flowdeck(server, "root", "profiles", "create", "team-a", "--owner", "alice", config=config)
    assert again.returncode == 2 and "profile team-a exists already" in again.stderr
    denied = flowdeck(server, "alice", "profiles", "create", "mine", "--owner", "alice", config=config)
    assert denied.returncode == 1
    assert denied.stderr.strip() == ("flowdeck: error: user 'alice' may not create profiles: only a cluster admin "
                                     "may")
    bad = flowdeck(server, "root", "profiles", "create", "team-b", "--owner", "alice", "--memory", "lots",
                   config=config)
    assert bad.returncode == 2 and "spec.resourceQuotaSpec.hard: memory: 'lots' is not a quantity" in bad.stderr

    listed = flowdeck(server, "alice", "profiles", "list", "-o", "json", config=config)
    [profile] = json.loads(listed.stdout)
    assert profile["spec"]["resourceQuotaSpec"]["hard"] == {"cpu": "2", "memory": "4Gi", "pods": "3"}
    assert flowdeck(server, "carol", "profiles", "list", "-o", "json", config=config).stdout.strip() == "[]"

    added = flowdeck(server, "alice", "profiles", "add-contributor", "team-a", "carol", "--role", "view",
                     config=config)
    assert added.returncode == 0, added.stderr
    shown = flowdeck(server, "carol", "profiles", "get", "team-a", config=config)
    assert shown.returncode == 0, shown.stderr
    assert "Owner:        alice" in shown.stdout and "carol (view)" in shown.stdout and "alice (owner)" in shown.stdout

    config.write_text(json.dumps({"namespace": "team-a"}))  # `-n` now defaults to team-a
    assert flowdeck(server, "carol", "get", "pipelineruns", config=config).returncode == 0
    other = flowdeck(server, "carol", "get", "pipelineruns", "-n", "default", config=config)
    assert other.returncode == 2 and "namespace 'default' not found" in other.stderr
    table = flowdeck(server, "carol", "get", "profiles", config=config)
    assert table.returncode == 0 and "team-a" in table.stdout and "NAMESPACE" not in table.stdout
    scoped = flowdeck(server, "carol", "get", "profiles", "-n", "team-a", config=config)
    assert scoped.returncode == 2 and "profiles are cluster-scoped" in scoped.stderr

    removed = flowdeck(server, "alice", "profiles", "remove-contributor", "team-a", "carol", config=config)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "carol (view) removed from profile team-a"
    gone = flowdeck(server, "carol", "get", "pipelineruns", config=config)
    assert gone.returncode == 2 and "namespace 'team-a' not found" in gone.stderr
