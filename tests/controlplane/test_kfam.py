"""The KFAM-compatible contributors API against a real `flowdeck up`: Kubeflow's JSON, flowdeck's rules.

A contributor added with POST /kfam/v1/bindings can work in the profile with the token they already
hold; removed with DELETE, that same token stops working there at once. Only the profile's admins
and owners manage contributors, lists show only profiles the caller may read, and bad bodies are
one-line 400s.
"""

import signal
from collections.abc import Iterator

import httpx
import pytest

from accounts import add_users
from helpers import ControlPlane, start_control_plane, wait_for


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ControlPlane, dict[str, str]]]:
    home = tmp_path_factory.mktemp("kfam") / "home"
    minted = add_users(home, admins=("root",), users=("alice", "carol", "dave"))
    plane = start_control_plane(home)
    with httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {minted['root']}"}) as root:
        for name in ("team-a", "team-x"):
            answer = root.put(f"/apis/flowdeck/v1/profiles/{name}", json={
                "apiVersion": "kubeflow.org/v1", "kind": "Profile", "spec": {"owner": {"name": "alice"}}})
            assert answer.status_code == 201, answer.text
        assert wait_for(lambda: len(root.get("/kfam/v1/bindings").json()["bindings"]) == 2, timeout=20)
    yield plane, minted
    assert plane.stop() in (0, -signal.SIGTERM), "\n".join(plane.output)


def client(server, user: str) -> httpx.Client:
    plane, minted = server
    return httpx.Client(base_url=plane.url, timeout=30, headers={"Authorization": f"Bearer {minted[user]}"})


def binding(user: str, namespace: str, role: str | None) -> dict:
    body = {"user": {"kind": "User", "name": user}, "referredNamespace": namespace}
    return body | ({"RoleRef": {"kind": "ClusterRole", "name": role}} if role else {})


def test_a_contributor_added_gets_access_and_loses_it_at_once_when_removed(server) -> None:
    experiments = "/apis/v2beta1/experiments"
    with client(server, "alice") as alice, client(server, "carol") as carol:
        assert carol.get(experiments, params={"namespace": "team-a"}).status_code == 404
        added = alice.post("/kfam/v1/bindings", json=binding("carol", "team-a", "edit"))
        assert added.status_code == 200, added.text
        made = carol.post(experiments, json={"display_name": "carols", "namespace": "team-a"})
        assert made.status_code == 200, made.text
        listed = alice.get("/kfam/v1/bindings", params={"namespace": "team-a"}).json()["bindings"]
        assert {"user": {"kind": "User", "name": "carol"}, "referredNamespace": "team-a",
                "RoleRef": {"kind": "ClusterRole", "name": "edit"}, "flowdeckRole": "edit"} in listed
        owner = next(b for b in listed if b["user"]["name"] == "alice")
        assert owner["RoleRef"]["name"] == "admin" and owner["flowdeckRole"] == "owner"  # Kubeflow's owner role

        removed = alice.request("DELETE", "/kfam/v1/bindings", json=binding("carol", "team-a", "edit"))
        assert removed.status_code == 200, removed.text
        gone = carol.get(experiments, params={"namespace": "team-a"})
        assert gone.status_code == 404 and gone.json()["message"] == "namespace 'team-a' not found"
        assert carol.get("/kfam/v1/bindings", params={"namespace": "team-a"}).json() == {"bindings": []}


def test_only_admins_and_owners_manage_contributors_up_to_their_own_role(server) -> None:
    with client(server, "alice") as alice, client(server, "carol") as carol, client(server, "dave") as dave:
        refused = dave.post("/kfam/v1/bindings", json=binding("dave", "team-a", "admin"))
        assert refused.status_code == 404 and refused.json()["message"] == "namespace 'team-a' not found"
        assert alice.post("/kfam/v1/bindings", json=binding("carol", "team-a", "view")).status_code == 200
        viewer = carol.post("/kfam/v1/bindings", json=binding("dave", "team-a", "view"))
        assert viewer.status_code == 403 and "may not manage in namespace 'team-a'" in viewer.json()["message"]
        assert alice.post("/kfam/v1/bindings", json=binding("carol", "team-a", "kubeflow-admin")).status_code == 200
        assert carol.post("/kfam/v1/bindings", json=binding("dave", "team-a", "view")).status_code == 200
        last_owner = carol.request("DELETE", "/kfam/v1/bindings", json=binding("alice", "team-a", None))
        assert last_owner.status_code == 403, last_owner.text
        wrong_role = alice.request("DELETE", "/kfam/v1/bindings", json=binding("dave", "team-a", "edit"))
        assert wrong_role.status_code == 404
        assert wrong_role.json()["message"] == "user:dave has the role view, not edit, in namespace 'team-a'"
        for bad, message in (
            (binding("dave", "team-a", "superuser"), "RoleRef.name: 'superuser' is not a role"),
            (binding("dave", "Team A", "view"), "referredNamespace: 'Team A' is not a valid namespace"),
            ({"referredNamespace": "team-a"}, "user: required"),
        ):
            answer = alice.post("/kfam/v1/bindings", json=bad)
            assert answer.status_code == 400 and answer.json()["message"].startswith(message), answer.text
        # dave sees team-a's bindings now, never team-x's
        seen = {b["referredNamespace"] for b in dave.get("/kfam/v1/bindings").json()["bindings"]}
        assert seen == {"team-a"}
        mine = dave.get("/kfam/v1/bindings", params={"user": "dave", "role": "view"}).json()["bindings"]
        assert [b["referredNamespace"] for b in mine] == ["team-a"]


def test_cluster_admin_role_lookup_about_others_is_for_cluster_admins(server) -> None:
    with client(server, "root") as root:
        assert root.get("/kfam/v1/role/clusteradmin", params={"user": "root"}).json() is True
        assert root.get("/kfam/v1/role/clusteradmin", params={"user": "dave"}).json() is False
        assert root.get("/kfam/v1/role/clusteradmin", params={"user": "nobody"}).json() is False
    with client(server, "dave") as dave:
        assert dave.get("/kfam/v1/role/clusteradmin", params={"user": "dave"}).json() is False
        for other in ("root", "alice", "nobody"):  # an admin, a user, no one: the same refusal
            refused = dave.get("/kfam/v1/role/clusteradmin", params={"user": other})
            assert refused.status_code == 403, refused.text
            assert refused.json()["message"] == ("user:dave may ask only whether they themselves are a cluster "
                                                 "admin (user=dave)")
    plane, _ = server
    assert httpx.get(f"{plane.url}/kfam/v1/role/clusteradmin", params={"user": "root"}).status_code == 401
