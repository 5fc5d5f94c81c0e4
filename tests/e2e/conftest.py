"""Fixtures for end-to-end tests in a real browser: Debian's headless Chromium, driven through Playwright.

Playwright's own browser download does not work here, so /usr/bin/chromium is launched; without it
the browser tests skip, except under CI=true, where they fail (`.ci/install-chromium` installs it).
`shot(page, name)` saves what a page shows under test-output/<test module>/.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
TEST_OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, shared by the module (each test opens its own context: its own cookies)."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (bash .ci/install-chromium installs it)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """`shot(page, name)` saves what the page shows as test-output/<module>/<test>-<name>.png (and returns it);
    <module> is the test module's name without `test_`."""
    folder = TEST_OUTPUT / request.module.__name__.rpartition(".")[2].removeprefix("test_").replace("_", "-")

    def save(page: Page, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{request.node.name}-{name}.png"
        page.screenshot(path=str(target), full_page=True)
        return target

    return save
