"""The Profile kind against a real `flowdeck up`: applied by a cluster admin, it gives its owner a namespace.

Covers what a team relies on: `flowdeck apply -f profile.yaml` makes the owner able to run pipelines
there (kfp.Client with their token) while others see nothing of it; only cluster admins create
profiles; the owner changes the profile but not its quota; bad specs are one-line 400s; a profile with unfinished runs
cannot be deleted, and deleting one takes its bindings away.
"""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import kfp
import pytest
from kfp import compiler
from kfp_server_api.exceptions import ApiException

from accounts import add_users
from flowdeck.store import open_store
from helpers import ControlPlane, start_control_plane, wait_for
from sample_pipelines import adder

PROFILE_YAML = """\
apiVersion: kubeflow.org/v1
kind: Profile
metadata:
  name: {name}
spec:
  owner: {{kind: User, name: {owner}}}
  resourceQuotaSpec:
    hard: {{cpu: "4", memory: 8Gi, requests.storage: 5Gi}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, dict[str, str], Path]]:
    home = tmp_path_factory.mktemp("profiles") / "home"
    minted = add_users(home, admins=("root",), users=("alice", "bob"))
    plane = start_control_plane(home)
    yield plane, minted, home
    assert plane.stop() in (0, -signal.SIGTERM), "\n".join(plane.output)


def api(server, user: str) -> httpx.Client:
    plane, minted, _ = server
    return httpx.Client(base_url=f"{plane.url}/apis/flowdeck/v1", timeout=30,
                        headers={"Authorization": f"Bearer {minted[user]}"})


def flowdeck(server, user: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    plane, minted, _ = server
    env = {**os.environ, "FLOWDECK_URL": plane.url, "FLOWDECK_TOKEN": minted[user],
           "FLOWDECK_CONFIG": str(tmp_path / "config.json")}
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def apply_profile(server, name: str, owner: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(PROFILE_YAML.format(name=name, owner=owner))
    done = flowdeck(server, "root", "apply", "-f", str(path), "--wait", "--timeout", "30", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"profile/{name} created" in done.stdout and f"profile/{name} Ready" in done.stdout


def test_an_applied_profile_lets_its_owner_run_pipelines_and_hides_them_from_others(server, tmp_path: Path) -> None:
    apply_profile(server, "team-a", "alice", tmp_path)
    plane, minted, _ = server
    package = tmp_path / "adder.yaml"
    compiler.Compiler().compile(adder, str(package))
    owner = kfp.Client(host=plane.url, existing_token=minted["alice"], namespace="team-a")
    run = owner.create_run_from_pipeline_package(str(package), arguments={"a": 1, "b": 2}, namespace="team-a",
                                                 experiment_name="first")
    assert owner.wait_for_run_completion(run.run_id, timeout=120).state == "SUCCEEDED"

    with api(server, "alice") as alice:
        profile = alice.get("/profiles/team-a").json()
        assert "namespace" not in profile["metadata"]
        ready = next(c for c in profile["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and "not enforced here: requests.storage" in ready["message"]
        assert [p["metadata"]["name"] for p in alice.get("/profiles").json()["items"]] == ["team-a"]
    other = kfp.Client(host=plane.url, existing_token=minted["bob"])
    assert run.run_id not in [r.run_id for r in other.list_runs(page_size=100).runs or []]
    with pytest.raises(ApiException) as hidden_runs:
        other.list_runs(namespace="team-a", page_size=100)
    assert hidden_runs.value.status == 404
    with api(server, "bob") as bob:
        assert bob.get("/profiles").json()["items"] == []
        hidden = bob.get("/profiles/team-a")
        assert hidden.status_code == 404 and hidden.json()["message"] == "profile/team-a not found"
        assert bob.get("/profiles/no-such").json()["message"] == "profile/no-such not found"

    listed = flowdeck(server, "alice", "get", "profiles", tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "team-a" in listed.stdout and "alice" in listed.stdout and "Ready" in listed.stdout


def test_only_cluster_admins_create_profiles_and_owners_change_them(server, tmp_path: Path) -> None:
    apply_profile(server, "team-b", "alice", tmp_path)
    document = {"apiVersion": "kubeflow.org/v1", "kind": "Profile",
                "spec": {"owner": {"kind": "User", "name": "bob"}}}
    with api(server, "bob") as bob:
        refused = bob.put("/profiles/bobs", json=document)
        assert refused.status_code == 403
        assert refused.json()["message"] == "user 'bob' may not create profiles: only a cluster admin may"
        # an existing profile bob cannot see answers exactly as a missing one
        assert bob.put("/profiles/team-b", json=document).json() == refused.json() | {
            "message": "user 'bob' may not create profiles: only a cluster admin may"}
        applied = bob.post("/apply", json={"items": [{**document, "metadata": {"name": "bobs"}}]})
        assert applied.status_code == 403
        assert bob.delete("/profiles/team-b").status_code == 404
    with api(server, "alice") as alice:
        current = alice.get("/profiles/team-b").json()
        current["spec"]["plugins"] = [{"kind": "WorkloadIdentity"}]
        changed = alice.put("/profiles/team-b", json=current)  # the owner changes what is theirs to change
        assert changed.status_code == 200, changed.text
        assert changed.json()["spec"]["plugins"] == [{"kind": "WorkloadIdentity"}]
    with api(server, "root") as root:
        bad = root.put("/profiles/team-c", json={**document, "spec": {"owner": {"name": "bob"},
                                                                       "resourceQuotaSpec": {"hard": {"cpu": "lots"}}}})
        assert bad.status_code == 400
        assert bad.json()["message"] == "spec.resourceQuotaSpec.hard: cpu: 'lots' is not a quantity (e.g. 2, 500m, 4Gi)"
        named = root.put("/profiles/team.c", json=document)
        assert named.status_code == 400 and named.json()["message"].startswith("metadata.name: a Profile is named")
        scoped = root.get("/namespaces/team-b/profiles/team-b")
        assert scoped.status_code == 400 and "cluster-scoped" in scoped.json()["message"]


def test_an_owner_cannot_change_their_own_quota_only_a_cluster_admin_can(server, tmp_path: Path) -> None:
    apply_profile(server, "team-q", "alice", tmp_path)  # cpu: "4", memory: 8Gi, requests.storage: 5Gi
    refusal = "user 'alice' may not change spec.resourceQuotaSpec of profile/team-q: only a cluster admin may"
    with api(server, "alice") as alice:
        current = alice.get("/profiles/team-q").json()
        quota = current["spec"]["resourceQuotaSpec"]
        raised = {**current, "spec": {**current["spec"], "resourceQuotaSpec": {"hard": {"cpu": "64"}}}}
        dropped = {**current, "spec": {"owner": current["spec"]["owner"]}}  # no quota at all is a raise too
        for document in (raised, dropped):
            for answer in (alice.put("/profiles/team-q", json=document),
                           alice.post("/apply", json={"items": [document]})):
                assert answer.status_code == 403, answer.text
                assert answer.json()["message"] == f"{refusal} (leave it as it is)"
        yaml = tmp_path / "raise.yaml"
        yaml.write_text(PROFILE_YAML.format(name="team-q", owner="alice").replace('cpu: "4"', 'cpu: "64"'))
        applied = flowdeck(server, "alice", "apply", "-f", str(yaml), tmp_path=tmp_path)
        assert applied.returncode != 0 and refusal in applied.stderr, applied.stderr
        assert alice.get("/profiles/team-q").json()["spec"]["resourceQuotaSpec"] == quota
        # the same quota, sent back with another change, is no change to it
        unchanged = alice.put("/profiles/team-q", json={**current, "spec": {**current["spec"], "plugins": []}})
        assert unchanged.status_code == 200, unchanged.text
    with api(server, "root") as root:
        current = root.get("/profiles/team-q").json()
        current["spec"]["resourceQuotaSpec"] = {"hard": {"cpu": "8"}}
        assert root.put("/profiles/team-q", json=current).status_code == 200
    with api(server, "alice") as alice:
        assert alice.get("/profiles/team-q").json()["spec"]["resourceQuotaSpec"] == {"hard": {"cpu": "8"}}


def test_a_profile_with_unfinished_runs_is_not_deleted_and_a_deleted_one_takes_its_bindings(server, tmp_path: Path
                                                                                            ) -> None:
    apply_profile(server, "team-d", "alice", tmp_path)
    _, _, home = server
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    try:
        store.create_run(id="unfinished-d", pipeline_name="p", display_name="p", state="RUNNING", pipeline_spec={},
                         namespace="team-d")
        with api(server, "alice") as alice:
            refused = alice.delete("/profiles/team-d")
            assert refused.status_code == 409
            assert refused.json()["message"] == ("profile team-d still has 1 unfinished run: terminate them (or wait "
                                                 "for them to end), then delete it")
            store.end_run("unfinished-d", "CANCELED", None)
            assert alice.delete("/profiles/team-d").status_code == 200
            assert wait_for(lambda: alice.get("/profiles/team-d").status_code == 404, timeout=20)
            assert alice.get("/namespaces/team-d/pipelineruns").status_code == 404  # alice's role is gone
    finally:
        store.close()
