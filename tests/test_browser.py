"""The site in a real headless Chromium, against the real services (as `make run` starts them).

Screenshots of every step are kept in test-artifacts/browser/ for a person to look at.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import need

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
# Without the background-networking flags Chromium hangs on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        need(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(system, browser, request):
    context = browser.new_context(
        base_url=system.url("frontend"), viewport={"width": 1100, "height": 760}
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    steps = iter(range(1, 100))

    def shot(step: str, target=None) -> None:
        name = f"{request.node.name.removeprefix('test_')}-{next(steps):02d}-{step}.png"
        (target or tab).screenshot(path=str(SCREENSHOTS / name), full_page=True)

    tab.shot = shot
    yield tab
    context.close()


def log_in(page, username: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_wrong_password_shows_an_error_next_to_the_field(page):
    from playwright.sync_api import expect

    page.goto("/")
    expect(page).to_have_url("/login")
    page.shot("login-page")
    log_in(page, "bruce", "not-the-password")
    expect(page.locator("#password-error")).to_have_text("Wrong username or password.")
    expect(page.get_by_label("Username")).to_have_value("bruce")
    page.shot("wrong-password")


def test_post_search_delete_and_log_out(page):
    from playwright.sync_api import expect

    text = f"Thinking about browsers {uuid.uuid4().hex[:8]}"
    log_in(page, "bruce", "bruce")
    expect(page.locator(".who strong")).to_have_text("bruce")
    expect(page.locator(".thought").first).to_be_visible()  # the seeded thoughts
    page.shot("logged-in")

    page.get_by_label("What are you thinking, bruce?").fill(text)
    page.get_by_role("button", name="Post").click()
    expect(page.locator(".flash")).to_have_text("Your thought is posted.")
    expect(page.locator(".thought-text").first).to_have_text(text)
    page.shot("posted")

    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".flash")).to_have_text("You have logged out.")
    page.shot("logged-out")

    # Searching needs no login; the query stays in the search box.
    page.locator(".topbar-search input").fill(text.split()[-1].upper())
    page.locator(".topbar-search button").click()
    expect(page.locator(".thought-text")).to_have_text([text])
    expect(page.locator("#search")).to_have_value(text.split()[-1].upper())
    expect(page.locator(".topbar-search")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete this thought")).to_have_count(0)
    page.shot("searched-logged-out")

    log_in(page, "bruce", "bruce")
    mine = page.locator(".thought", has_text=text)
    mine.get_by_role("button", name="Delete this thought").click()
    expect(page.locator(".flash")).to_have_text("The thought is deleted.")
    expect(page.locator(".thought", has_text=text)).to_have_count(0)
    page.shot("deleted")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url("/login")
    page.goto("/")
    expect(page).to_have_url("/login")


def test_small_screens_get_the_same_page(page):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 800})
    log_in(page, "stephen", "stephen")
    expect(page.locator(".thought").first).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the page scrolls sideways on a phone"
    page.shot("phone")


def test_a_stopped_thoughts_service_shows_the_503_page(page, system):
    from playwright.sync_api import expect

    log_in(page, "stephen", "stephen")
    expect(page.locator(".who strong")).to_have_text("stephen")
    thoughts = system.processes["thoughts"]
    thoughts.stop()
    try:
        response = page.goto("/")
        assert response is not None
        assert response.status == 503
        expect(page.locator("h1")).to_have_text("Temporarily unavailable")
        expect(page.locator(".problem")).to_contain_text("The thoughts service")
        expect(page.locator(".request-id code")).to_have_text(response.headers["x-request-id"])
        assert "Traceback" not in page.content()
        page.shot("thoughts-down")
    finally:
        thoughts.start()  # the session's other tests need it
    page.reload()
    expect(page.locator(".who strong")).to_have_text("stephen")
