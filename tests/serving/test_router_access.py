"""An InferenceService of a multi-user control plane answers only those who may read its profile.

team-a's service: its viewer predicts (V1, V2, with a token or the dashboard's login cookie) and gets
the model's own predictions; team-b's owner gets exactly what a missing model gets; no credential is
a 401 asking for a bearer token; a revoked token stops working within the router's cache TTL; health
stays open. The resource API hides the service from team-b like a missing object. What the check
costs per request on a cache hit. Last, a single-user control plane's service is open, and closes
once the first user exists.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from accounts import add_users
from flowdeck.config import Settings
from flowdeck.profiles import tokens
from flowdeck.profiles.logins import COOKIE, start_login
from flowdeck.serving.access import TTL_SECONDS, RouterAccess
from flowdeck.store import open_store
from flowdeck.store.identity import IdentityStore
from helpers import ControlPlane, start_control_plane, wait_for

API = "/apis/flowdeck/v1"
ISVC = f"{API}/namespaces/team-a/inferenceservices"
#: user -> (profile, role)
USERS = {"a-edit": ("team-a", "edit"), "a-view": ("team-a", "view"), "b-owner": ("team-b", "owner")}
#: A token of a-view that the revocation test revokes.
REVOCABLE = "revocable0001"


@dataclass
class Service:
    plane: ControlPlane
    #: user, "revocable" or "cookie" -> credential
    secrets: dict[str, str]
    url: str

    def client(self, who: str | None) -> httpx.Client:
        """An HTTP client with `who`'s credential (None: none at all)."""
        if who is None:
            return httpx.Client(timeout=30)
        if who == "cookie":
            return httpx.Client(timeout=30, cookies={COOKIE: self.secrets["cookie"]})
        return httpx.Client(timeout=30, headers={"Authorization": f"Bearer {self.secrets[who]}"})


def seed(home: Path) -> dict[str, str]:
    """USERS with a token each, a-view's REVOCABLE token and a dashboard login of a-view."""
    secrets = add_users(home, users=tuple(USERS), roles=USERS)
    settings = Settings(home=home)
    store = open_store(settings.resolved_database_url)
    try:
        identity = IdentityStore(store.engine)
        secret = tokens.mint()
        identity.add_token(id=REVOCABLE, lookup=tokens.lookup_key(secret), digest=tokens.digest(secret),
                           owner="user:a-view", scopes=["read"])
        secrets["revocable"] = secret
        secrets["cookie"] = start_login(identity, "a-view", settings, client="127.0.0.1")
    finally:
        store.close()
    return secrets


def isvc(name: str, model_dir: Path) -> dict[str, Any]:
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": f"file://{model_dir}",
                                             "protocolVersion": "v2"}}}}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("router-access") / "home"
    secrets = seed(home)
    plane = start_control_plane(home)
    try:
        with httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {secrets['a-edit']}"},
                          timeout=30) as editor:
            applied = editor.post(f"{API}/apply", json={"items": [isvc("iris", model_dir)]})
            assert applied.status_code in (200, 201), applied.text

            def ready() -> str | None:
                status = editor.get(f"{ISVC}/iris").json().get("status") or {}
                conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
                return status["url"] if conditions.get("Ready") == "True" else None

            assert wait_for(ready, timeout=90, interval=0.2), (editor.get(f"{ISVC}/iris").json(), plane.output[-20:])
            yield Service(plane, secrets, ready())  # type: ignore[arg-type]
    finally:
        assert plane.stop() == 0, "\n".join(plane.output)


def v2_request(rows: np.ndarray) -> dict[str, Any]:
    return {"id": "r1", "inputs": [{"name": "x", "shape": list(rows.shape), "datatype": "FP64",
                                    "data": rows.ravel().tolist()}]}


@pytest.mark.parametrize("who", ["a-view", "cookie"])
def test_a_reader_of_the_profile_predicts(service: Service, classifier: tuple[Any, np.ndarray], who: str) -> None:
    model, rows = classifier
    expected = model.predict(rows).tolist()
    with service.client(who) as client:
        v1 = client.post(f"{service.url}/v1/models/iris:predict", json={"instances": rows.tolist()})
        assert v1.status_code == 200, v1.text
        assert v1.json() == {"predictions": expected}
        assert v1.headers["x-flowdeck-revision"] == "iris-predictor-00001"
        v2 = client.post(f"{service.url}/v2/models/iris/infer", json=v2_request(rows))
        assert v2.status_code == 200, v2.text
        assert v2.json()["id"] == "r1" and v2.json()["outputs"][0]["data"] == expected
        assert client.get(f"{service.url}/.flowdeck/router").json()["namespace"] == "team-a"


def test_another_profile_gets_what_a_missing_model_gets(service: Service, classifier: tuple[Any, np.ndarray]) -> None:
    rows = classifier[1]
    requests = [("POST", "/v1/models/{m}:predict", {"json": {"instances": rows.tolist()}}),
                ("POST", "/v2/models/{m}/infer", {"json": v2_request(rows)}),
                ("GET", "/v2/models/{m}", {}),
                ("GET", "/v1/models/{m}", {})]
    with service.client("a-view") as reader, service.client("b-owner") as outsider:
        for method, path, extra in requests:
            theirs = outsider.request(method, service.url + path.format(m="iris"), **extra)
            missing = reader.request(method, service.url + path.format(m="abcd"), **extra)
            assert (theirs.status_code, missing.status_code) == (404, 404), (path, theirs.text, missing.text)
            assert theirs.json() == {"error": "model 'iris' does not exist"}
            assert missing.json() == {"error": "model 'abcd' does not exist"}
            assert theirs.headers["content-type"] == missing.headers["content-type"]
            assert "x-flowdeck-revision" not in theirs.headers
            # to the outsider, the service's model and a model nobody has look exactly alike
            guess = outsider.request(method, service.url + path.format(m="abcd"), **extra)
            assert (guess.status_code, guess.text.replace("abcd", "iris"), dict(guess.headers)) == \
                (theirs.status_code, theirs.text, dict(theirs.headers))
        listed = outsider.get(f"{service.url}/v1/models")
        assert listed.status_code == 404 and listed.json() == {"error": "no such endpoint: /v1/models"}
        assert outsider.get(f"{service.url}/.flowdeck/router").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer fdt_not_a_real_token", "Basic YWxpY2U6cHc="])
def test_no_or_a_bad_credential_is_a_401(service: Service, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (("POST", "/v1/models/iris:predict"), ("GET", "/v2/models/iris"), ("GET", "/.flowdeck/router")):
        answer = httpx.request(method, service.url + path, headers=headers, json={"instances": [[1, 2, 3, 4]]})
        assert answer.status_code == 401, answer.text
        assert answer.headers["www-authenticate"] == "Bearer"
        assert set(answer.json()) == {"error"} and "fdt_not_a_real_token" not in answer.text


def test_health_stays_open(service: Service) -> None:
    for path, body in (("/v2/health/live", {"live": True}), ("/v2/health/ready", {"ready": True})):
        answer = httpx.get(service.url + path)
        assert answer.status_code == 200 and answer.json() == body
        assert "x-flowdeck-revision" not in answer.headers  # nothing names the service


def test_a_revoked_token_stops_within_the_ttl(service: Service, classifier: tuple[Any, np.ndarray]) -> None:
    rows = classifier[1].tolist()
    with service.client("revocable") as client, service.client("a-view") as owner:
        assert client.post(f"{service.url}/v1/models/iris:predict", json={"instances": rows}).status_code == 200
        revoked = owner.delete(f"{service.plane.url}{API}/tokens/{REVOCABLE}")
        assert revoked.status_code == 200, revoked.text
        started = time.monotonic()

        def refused() -> bool:
            return client.post(f"{service.url}/v1/models/iris:predict", json={"instances": rows}).status_code == 401

        assert wait_for(refused, timeout=TTL_SECONDS + 5, interval=0.1)
        assert time.monotonic() - started <= TTL_SECONDS + 1.0
        answer = client.get(f"{service.url}/v2/models/iris")
        assert answer.json() == {"error": f"token {REVOCABLE} was revoked"}
        assert owner.get(f"{service.url}/v2/models/iris").status_code == 200  # a-view's other token still works


def test_the_resource_api_hides_the_service_from_another_profile(service: Service, model_dir: Path) -> None:
    with service.client("b-owner") as outsider:
        found = outsider.get(f"{service.plane.url}{ISVC}/iris")
        missing = outsider.get(f"{service.plane.url}{ISVC}/abcd")
        assert found.status_code == missing.status_code == 404
        assert found.text == missing.text.replace("abcd", "iris")
        applied = outsider.post(f"{service.plane.url}{API}/apply", json={"items": [isvc("iris", model_dir)]})
        new = outsider.post(f"{service.plane.url}{API}/apply", json={"items": [isvc("abcd", model_dir)]})
        assert applied.status_code == new.status_code == 404, applied.text
        assert applied.text == new.text.replace("abcd", "iris")
    with service.client("a-view") as reader:
        assert reader.get(f"{service.plane.url}{ISVC}/iris").json()["spec"]["predictor"]["model"]["storageUri"] == \
            f"file://{model_dir}"  # unchanged


@pytest.mark.anyio
async def test_a_cache_hit_costs_microseconds(tmp_path: Path) -> None:
    secrets = add_users(tmp_path, users=tuple(USERS), roles=USERS)
    access = RouterAccess(Settings(home=tmp_path))
    try:
        def scope(who: str) -> dict[str, Any]:
            return {"type": "http", "path": "/v1/models/iris:predict", "client": ("127.0.0.1", 5000),
                    "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                                (b"authorization", f"Bearer {secrets[who]}".encode()),
                                (b"x-request-id", uuid.uuid4().hex.encode())]}

        reader, outsider = scope("a-view"), scope("b-owner")
        assert await access.refusal(reader, "team-a") is None  # the miss: reads the store
        assert (await access.refusal(outsider, "team-a")).status == 404  # type: ignore[union-attr]
        count = 5000
        started = time.perf_counter()
        for _ in range(count):
            await access.refusal(reader, "team-a")
        per_request = (time.perf_counter() - started) / count
        print(f"router access check, cache hit: {per_request * 1e6:.1f} µs per request")
        assert per_request < 0.5e-3
    finally:
        access.close()


def test_a_single_user_service_closes_when_the_first_user_appears(tmp_path: Path, model_dir: Path,
                                                                  classifier: tuple[Any, np.ndarray]) -> None:
    home = tmp_path / "home"
    plane = start_control_plane(home)
    rows = classifier[1].tolist()
    try:
        document = isvc("solo", model_dir)
        del document["metadata"]["namespace"]
        assert httpx.post(f"{plane.url}{API}/apply", json={"items": [document]}).status_code in (200, 201)
        url = f"{API}/namespaces/default/inferenceservices/solo"

        def serving() -> str | None:
            status = httpx.get(plane.url + url).json().get("status") or {}
            return status.get("url") if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in status.get("conditions", [])) else None

        assert wait_for(serving, timeout=90, interval=0.2), plane.output[-20:]
        predict = f"{serving()}/v1/models/solo:predict"
        assert httpx.post(predict, json={"instances": rows}).status_code == 200  # open, like the control plane
        root = add_users(home, admins=("root",))["root"]
        assert wait_for(lambda: httpx.post(predict, json={"instances": rows}).status_code == 401, timeout=10)
        answer = httpx.post(predict, json={"instances": rows}, headers={"Authorization": f"Bearer {root}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["predictions"] == classifier[0].predict(classifier[1]).tolist()
    finally:
        assert plane.stop() == 0, "\n".join(plane.output)
