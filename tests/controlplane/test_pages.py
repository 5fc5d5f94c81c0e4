"""The dashboard's home page: served at `/`, lists recent runs, escapes what users typed, needs a sign-in."""

import httpx
import kfp
from kfp import dsl

from helpers import ControlPlane, StartControlPlane


@dsl.component
def echo(text: str) -> str:
    return text


@dsl.pipeline
def echoer(text: str = "hi") -> str:
    return echo(text=text).output


def test_home_lists_recent_runs_and_escapes_their_names(kfp_server: ControlPlane, kfp_client: kfp.Client) -> None:
    hostile = "<script>alert('x')</script>"
    run = kfp_client.create_run_from_pipeline_func(echoer, run_name=hostile, experiment_name="pages")
    page = httpx.get(kfp_server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert run.run_id in page.text
    assert hostile not in page.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text


def test_without_credentials_a_browser_is_sent_to_sign_in_and_sees_no_data(control_plane: StartControlPlane) -> None:
    server = control_plane(env={"FLOWDECK_TOKEN": "s3cret"})
    client = kfp.Client(host=server.url, existing_token="s3cret")
    run = client.create_run_from_pipeline_func(echoer, experiment_name="private")
    page = httpx.get(server.url + "/runs?ns=default", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fruns%3Fns%3Ddefault"
    assert run.run_id[:8] not in page.text
    assert httpx.get(server.url + "/").status_code == 401  # not a browser: the API's answer
    assert httpx.get(server.url + "/apis/v2beta1/runs", headers={"Accept": "text/html"}).status_code == 401
    shown = httpx.get(server.url + "/", headers={"Authorization": "Bearer s3cret"})
    assert shown.status_code == 200 and run.run_id in shown.text
