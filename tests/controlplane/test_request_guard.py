"""The request guard: web pages cannot drive a control plane (DNS rebinding, cross-site requests)."""

import httpx

from helpers import ControlPlane, StartControlPlane


def test_a_foreign_host_header_is_refused(kfp_server: ControlPlane) -> None:
    answer = httpx.get(f"{kfp_server.url}/apis/v2beta1/runs", headers={"Host": "attacker.example:8080"})
    assert answer.status_code == 403
    assert "attacker.example" in answer.json()["message"]
    port = kfp_server.url.rsplit(":", 1)[1]
    for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
        assert httpx.get(f"{kfp_server.url}/apis/v2beta1/healthz", headers={"Host": host}).status_code == 200


def test_cross_site_writes_are_refused_and_same_origin_ones_accepted(kfp_server: ControlPlane) -> None:
    url = f"{kfp_server.url}/apis/v2beta1/experiments"
    foreign = httpx.post(url, json={"display_name": "csrf"}, headers={"Origin": "http://attacker.example"})
    assert foreign.status_code == 403 and foreign.json()["message"] == "cross-site request refused"
    fetched = httpx.post(url, json={"display_name": "csrf"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403
    own = httpx.post(url, json={"display_name": "same-origin"}, headers={"Origin": kfp_server.url})
    assert own.status_code == 200, own.text
    assert httpx.get(url, headers={"Origin": "http://attacker.example"}).status_code == 200  # reads carry no risk


def test_a_token_is_needed_on_every_api_and_accepted_in_any_case(control_plane: StartControlPlane) -> None:
    server = control_plane(env={"FLOWDECK_TOKEN": "s3cret"})
    for path in ("/apis/v2beta1/runs", "/apis/flowdeck/v1/kinds", "/no/such/path"):
        assert httpx.get(server.url + path).status_code == 401
        assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(server.url + "/apis/v2beta1/runs", headers={"Authorization": "bearer s3cret"}).status_code == 200
