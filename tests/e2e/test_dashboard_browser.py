"""The dashboard in a real browser: headless Chromium (Playwright) against a real `flowdeck up`.

Runs of `sample_pipelines.evaluation` (metrics, a confusion matrix and ROC curve, HTML, Markdown, a
dataset) are submitted with the real kfp.Client; then the browser opens the run and sees its DAG with
every task SUCCEEDED, a task's log, the confusion matrix and ROC curve; compares two runs and sees
the parameter that differs highlighted; terminates a running run with the page's button and sees it
CANCELED; and shows that a hostile run name and an HTML artifact with script run nothing in the
dashboard's origin. Every page is saved under test-output/dashboard-browser/; no page may log a
script error.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import kfp
import pytest
from kfp import dsl
from playwright.sync_api import Browser, Page, expect

from helpers import ControlPlane, start_control_plane
from sample_pipelines import evaluation, sleeper

Shot = Callable[[Page, str], Path]
HOSTILE_NAME = "<img src=x onerror=\"window.__pwned='name'\"><script>window.__pwned='name'</script>"


@dsl.component
def hostile_report(report: dsl.Output[dsl.HTML]):
    with open(report.path, "w") as f:
        f.write("<h1 id='inside'>report</h1><script>parent.__pwned = 'html'; top.__pwned = 'html';"
                "document.title = 'ran';</script><img src=x onerror=\"parent.__pwned='html'\">")


@dsl.pipeline
def hostile():
    hostile_report()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    server = start_control_plane(tmp_path_factory.mktemp("dashboard-browser") / "home")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server: ControlPlane) -> kfp.Client:
    return kfp.Client(host=server.url)


@pytest.fixture(scope="module")
def evaluated(client: kfp.Client) -> tuple[str, str]:
    """Two finished evaluation runs in one experiment, with learning rates 0.1 and 0.3: their ids."""
    ids = []
    for rate in (0.1, 0.3):
        run = client.create_run_from_pipeline_func(evaluation, arguments={"learning_rate": rate},
                                                   run_name=f"evaluate lr={rate}", experiment_name="browser")
        ids.append(run.run_id)
    for run_id in ids:
        assert client.wait_for_run_completion(run_id, timeout=120).state == "SUCCEEDED"
    return ids[0], ids[1]


@pytest.fixture
def script_errors() -> Iterator[list[str]]:
    """Script errors and refusals the page logs; any left at the end fails the test."""
    errors: list[str] = []
    yield errors
    assert not errors, errors


@pytest.fixture
def page(browser: Browser, script_errors: list[str]) -> Iterator[Page]:
    """A page whose script errors fail the test (pages allow no inline script, so none may be refused)."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    page.on("console", lambda message: script_errors.append(message.text) if message.type == "error" else None)
    yield page
    context.close()


def test_a_run_shows_its_dag_task_logs_and_classification_charts(
        server: ControlPlane, evaluated: tuple[str, str], page: Page, shot: Shot) -> None:
    run_id = evaluated[0]
    page.goto(f"{server.url}/runs/{run_id}")
    nodes = page.locator("#run-dag g.node")
    expect(nodes).to_have_count(2)
    expect(page.locator("#run-dag g.node.state-SUCCEEDED")).to_have_count(2)
    expect(page.locator("#run-state")).to_have_text("SUCCEEDED")
    shot(page, "run")

    page.locator('#run-dag g.node[data-node="evaluate"]').click()
    panel = page.locator('#task-panel .task-detail[data-task-path="evaluate"]')
    expect(panel).to_be_visible()
    expect(panel.locator(".attempts")).to_contain_text("SUCCEEDED")
    panel.locator("a[data-log]").first.click()
    expect(page.locator("#task-log")).to_contain_text("accuracy=0.9")
    shot(page, "task-log")

    with page.expect_navigation():
        panel.locator("a.artifact", has_text="classes").click()
    matrix = page.locator("#confusion-matrix")
    expect(matrix).to_contain_text("cat")
    expect(matrix).to_contain_text("bird")
    expect(matrix.locator("td", has_text=re.compile(r"^\s*9\b"))).to_have_count(1)  # bird predicted as bird
    roc = page.locator('.chart[data-chart="roc-data"]')
    expect(roc.locator("canvas")).to_have_count(1)  # uPlot drew the curve
    assert roc.bounding_box()["height"] > 100
    shot(page, "classification-metrics")


def test_a_lineage_task_link_opens_that_tasks_panel(
        server: ControlPlane, client: kfp.Client, evaluated: tuple[str, str], page: Page) -> None:
    details = {task.display_name: task for task in client.get_run(evaluated[0]).run_details.task_details}
    predictions = details["evaluate"].outputs["predictions"].artifact_ids[0]
    page.goto(f"{server.url}/artifacts/{predictions}")
    with page.expect_navigation():
        page.locator("#consumed-by a", has_text="summarize").click()
    assert page.url.endswith(f"?task={details['summarize'].task_id}")
    expect(page.locator('#task-panel .task-detail[data-task-path="summarize"]')).to_be_visible()
    expect(page.locator('#run-dag g.node[data-node="summarize"]')).to_have_class(re.compile(r"\bselected\b"))


def test_comparing_two_runs_highlights_the_parameter_that_differs(
        server: ControlPlane, evaluated: tuple[str, str], page: Page, shot: Shot) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#system-status")).to_contain_text("SQLite")
    for run_id in evaluated:
        expect(page.locator(f"#run-{run_id}")).to_contain_text("SUCCEEDED")
    shot(page, "home")
    with page.expect_navigation():
        page.get_by_role("link", name="Runs", exact=True).first.click()
    for run_id in evaluated:
        page.locator(f'input[name="runs"][value="{run_id}"]').check()
    with page.expect_navigation():
        page.get_by_role("button", name="Compare selected").click()
    assert page.url.startswith(f"{server.url}/compare")
    learning_rate = page.locator('tr[data-parameter="learning_rate"]')
    expect(learning_rate).to_have_class(re.compile(r"\bdiff\b"))
    expect(learning_rate).to_contain_text("0.3")
    expect(page.locator("tr.diff", has_text="accuracy")).to_have_count(1)
    expect(page.locator(".chart canvas").first).to_be_visible()
    shot(page, "compare")


def test_terminating_a_running_run_from_its_page_cancels_it(
        server: ControlPlane, client: kfp.Client, page: Page, shot: Shot) -> None:
    run = client.create_run_from_pipeline_func(sleeper, arguments={"seconds": 120}, run_name="long nap",
                                               experiment_name="browser")
    page.goto(f"{server.url}/runs/{run.run_id}")
    expect(page.locator("#run-dag g.node.state-RUNNING")).to_have_count(1, timeout=30_000)
    shot(page, "running")
    page.once("dialog", lambda dialog: dialog.accept())  # "Terminate this run?"
    page.locator("#terminate").click()
    expect(page.locator("#run-state")).to_have_text("CANCELED", timeout=30_000)
    expect(page.locator("#run-dag g.node.state-CANCELED")).to_have_count(1)
    assert client.get_run(run.run_id).state == "CANCELED"
    shot(page, "canceled")


def test_hostile_names_and_html_artifacts_run_no_script_in_the_dashboard(
        server: ControlPlane, client: kfp.Client, page: Page, shot: Shot, script_errors: list[str]) -> None:
    run = client.create_run_from_pipeline_func(hostile, run_name=HOSTILE_NAME, experiment_name="browser")
    assert client.wait_for_run_completion(run.run_id, timeout=120).state == "SUCCEEDED"
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    for path in ("/", "/runs", f"/runs/{run.run_id}"):
        page.goto(server.url + path)
        expect(page.get_by_text("window.__pwned='name'", exact=False).first).to_be_visible()  # shown as text
        assert page.evaluate("window.__pwned") is None, path
    page.locator('#run-dag g.node[data-node="hostile-report"]').click()
    with page.expect_navigation():
        page.locator("#task-panel a.artifact").first.click()
    frame = page.frame_locator("iframe.html-artifact")
    expect(frame.locator("#inside")).to_have_text("report")  # the HTML is shown ...
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None  # ... and its script ran nowhere
    assert page.title() != "ran"
    shot(page, "hostile-artifact")
    page.goto(page.url + "/content")  # even opened directly, the artifact's script cannot run
    page.wait_for_timeout(300)
    assert page.title() != "ran" and page.evaluate("window.__pwned") is None
    assert not dialogs
    # what the browser logged is only its refusals of the artifact's script and image (the sandbox and CSP at work)
    assert script_errors and all("Content Security Policy" in e or "Blocked script execution" in e
                                 for e in script_errors), script_errors
    script_errors.clear()
