"""The request guard: web pages cannot drive a control plane (DNS rebinding, cross-site requests)."""

import socket

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


def test_an_oversized_body_is_refused_before_it_is_read(kfp_server: ControlPlane) -> None:
    from flowdeck.controlplane.auth import MAX_BODY_BYTES

    url = f"{kfp_server.url}/apis/v2beta1/experiments"
    host, port = kfp_server.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:  # declares more than it sends
        raw.sendall(f"POST /apis/v2beta1/experiments HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {MAX_BODY_BYTES + 1}\r\n\r\n{{}}".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 413 ")

    def chunks():  # no Content-Length: the body is counted while it is read
        chunk = b" " * (1024 * 1024)
        for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
            yield chunk

    streamed = httpx.post(url, content=chunks(), headers={"Content-Type": "application/json"}, timeout=60)
    assert streamed.status_code == 413
    assert "larger than" in streamed.json()["message"]
