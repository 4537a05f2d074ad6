"""A real browser: headless Chromium clicks through the sign-in and the stand-in's consent
page. Run with `make e2e`; it needs Debian's chromium package and takes screenshots, which
`make screenshots` (WRITE_SCREENSHOTS=1) writes over the ones in docs/screenshots."""

import os

import pytest
from conftest import running_app

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
DOCS_SCREENSHOTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "docs", "screenshots")
# What the machine's closed network needs: no calls home, no sandbox as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def page():
    # Imported here so that `make test`, which deselects this file, does not need it.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 900, "height": 700})
        yield context.new_page()
        browser.close()


@pytest.fixture
def screenshot(tmp_path):
    """Take a screenshot: into the test's own folder, or with WRITE_SCREENSHOTS=1 over the
    README's, so that an ordinary run leaves the tree as it was."""
    folder = DOCS_SCREENSHOTS if os.environ.get("WRITE_SCREENSHOTS") == "1" else tmp_path

    def take(page, name):
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{name}.png")
        page.screenshot(path=path, full_page=True)
        assert os.path.getsize(path) > 0

    return take


def test_sign_in_through_the_consent_page(page, live_app, screenshot):
    page.goto(live_app + "/")
    assert "local stand-in for Fitbit" in page.inner_text(".banner")
    screenshot(page, "home")

    page.click("text=Sign in with Fitbit >> nth=-1")
    page.wait_for_selector("text=would like to access your data")
    assert "/sandbox/oauth2/authorize" in page.url
    screenshot(page, "consent")

    page.click("button:has-text('Allow')")
    page.wait_for_selector("h1:has-text('Hello, Alex R.')")
    assert page.url == live_app + "/"
    assert "You are signed in with Fitbit." in page.inner_text(".flash")
    screenshot(page, "signed-in")

    page.click("text=See what just happened")
    page.wait_for_selector("h1:has-text('What just happened')")
    screenshot(page, "trace")
    page.go_back()

    page.click("button:has-text('Sign out')")
    page.wait_for_selector("text=You are signed out.")


def test_sign_in_with_google_health_through_its_consent_page(page, tmp_path, screenshot):
    with running_app(tmp_path, provider="google") as (url, _):
        page.goto(url + "/")
        assert "local stand-in for Google Health" in page.inner_text(".banner")
        page.click("text=Sign in with Google Health >> nth=-1")
        page.wait_for_selector("text=would like to access your data")
        assert "/sandbox/google/o/oauth2/v2/auth" in page.url
        assert "Google stand-in" in page.title()
        from axe_playwright_python.sync_playwright import Axe

        violations = Axe().run(page).response["violations"]
        assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == []
        screenshot(page, "consent-google")
        page.click("button:has-text('Allow')")
        page.wait_for_selector("h1:has-text('Hello, Alex Rivera')")
        assert "You are signed in with Google Health." in page.inner_text(".flash")
        assert page.locator("svg.chart rect").count() == 30
        screenshot(page, "signed-in-google")
        page.click("button:has-text('Disconnect')")
        page.wait_for_selector("text=Disconnected. Google Health has revoked")


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_show_my_sleep_is_a_consent_round_that_comes_back_to_the_panel(
    page, tmp_path, screenshot, provider
):
    name = {"fitbit": "Fitbit", "google": "Google Health"}[provider]
    with running_app(tmp_path, provider=provider) as (url, _):
        page.goto(url + "/auth")
        page.click("button:has-text('Allow')")
        page.wait_for_selector("h1:has-text('Hello')")
        assert page.locator("svg.chart").count() == 1  # the steps alone
        page.click("button:has-text('Show my sleep')")
        page.wait_for_selector("text=would like to access your data")
        offered = page.locator("input[name=scope]")
        if provider == "google":  # that one scope; the rest stays granted
            assert offered.count() == 1
        else:  # every scope held, and sleep
            assert offered.count() == 3
        page.click("button:has-text('Allow')")
        page.wait_for_selector(f"text={name} now lets this app see your sleep.")
        assert page.locator("svg.stages rect").count() >= 2
        page.click("button:has-text('Show my heart rate')")
        page.click("button:has-text('Allow')")
        page.wait_for_selector("text=at rest today")
        # Steps, a night, the nights, the resting rate, and today's line: one scope, two panels.
        assert page.locator("svg.chart").count() == 5
        assert page.locator("#workouts-heading").count() == 1
        screenshot(page, "panels" if provider == "fitbit" else "panels-google")
        page.click("text=See what just happened")
        page.wait_for_selector("text=A second consent round, for your sleep")


def test_deny_on_the_consent_page(page, live_app):
    page.goto(live_app + "/auth")
    page.click("button:has-text('Deny')")
    page.wait_for_selector("text=You chose not to connect")
    assert page.url == live_app + "/"


WIDTHS = (390, 1024, 1280)  # a phone, a small laptop, a desktop


def pages_of_a_sign_in(page, url, provider):
    """Visit each kind of page of the app and of its stand-in, signed out and in; yields
    each page's name once the browser shows it."""
    stand_in = "/sandbox" if provider == "fitbit" else "/sandbox/google"
    authorize = "/oauth2/authorize" if provider == "fitbit" else "/o/oauth2/v2/auth"
    page.goto(url + "/")
    yield "home, signed out"
    page.goto(url + "/trace")
    yield "the trace, before a sign-in"
    page.goto(url + "/auth")
    yield "the stand-in's consent page"
    page.click("button:has-text('Allow')")
    page.wait_for_selector("h1:has-text('Hello')")
    yield "home, signed in"
    # Step 10: each panel's button, its consent round, and the page with every panel.
    for button, done in [("Show my sleep", "asleep"), ("Show my heart rate", "a minute")]:
        page.click(f"button:has-text('{button}')")
        page.wait_for_selector("text=would like to access your data")
        if button == "Show my sleep":
            yield "the stand-in's consent page, for one scope more"
        page.click("button:has-text('Allow')")
        page.wait_for_selector(f"text={done}")
    yield "home, with every panel"
    for path, name in [
        ("/trace", "the trace"),
        ("/users", "users"),
        ("/no-such-page", "an error page (404)"),
        (f"{stand_in}{authorize}?client_id=NOSUCH", "the stand-in's error page"),
        (f"{stand_in}/walk", "the stand-in's walk page"),
    ]:
        page.goto(url + path)
        yield name
    # A walk: the stand-in notifies the app, the next view fetches, the trace shows both.
    page.click("button:has-text('Walk')")
    page.wait_for_selector("text=answered 2xx at once: 1")
    page.goto(url + "/")
    page.goto(url + "/trace")
    page.wait_for_selector("text=A notification from")
    yield "the trace, after a notification"
    # Delete my data: the page that says what will go, then the home page it ends on.
    page.goto(url + "/")
    page.click("a:has-text('Delete my data')")
    page.wait_for_selector("h1:has-text('Delete my data')")
    yield "delete my data, before it goes"
    page.click("button:has-text('Delete my data')")
    page.wait_for_selector("text=Your data is deleted")
    yield "home, after deleting"


def widest(page):
    return page.evaluate("document.documentElement.scrollWidth")


def smallest_chart_label(page):
    """The size in CSS pixels at which the chart's smallest label is drawn, or None."""
    return page.evaluate(
        """() => {
          const sizes = [...document.querySelectorAll('svg.chart text')].map(
            (text) => text.getScreenCTM().a * parseFloat(getComputedStyle(text).fontSize));
          return sizes.length ? Math.min(...sizes) : null;
        }"""
    )


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_every_page_fits_every_width_and_is_usable_by_everyone(page, tmp_path, capsys, provider):
    """Each kind of page, at a phone's width and at two desktop ones: nothing wider than the
    window, the chart's labels readable, and no axe-core violation of any impact, each named
    (axe-core is bundled by axe-playwright-python)."""
    from axe_playwright_python.sync_playwright import Axe

    axe, report, problems = Axe(), [], []
    with running_app(tmp_path, provider=provider) as (url, _):
        for name in pages_of_a_sign_in(page, url, provider):
            shown = page.url
            widths, found, label_at_390 = [], 0, None
            for width in WIDTHS:
                page.set_viewport_size({"width": width, "height": 800})
                if page.url != shown:
                    page.goto(shown)
                widths.append(widest(page))
                if widths[-1] > width:
                    problems.append(f"{name}: {widths[-1]} px wide at {width} px")
                if width == 390:
                    label_at_390 = smallest_chart_label(page)
                    if label_at_390 is not None and label_at_390 < 10:
                        problems.append(f"{name}: a chart label of {label_at_390:.1f} px")
                violations = axe.run(page).response["violations"]
                found += len(violations)
                problems.extend(
                    f"{name} at {width} px: {v['id']} ({v['impact']}): "
                    f"{[node['target'] for node in v['nodes']]}"
                    for v in violations
                )
            label = f", chart labels {label_at_390:.1f} px at 390" if label_at_390 else ""
            report.append(f"{name}: {widths} px wide, {found} violations{label}")
    with capsys.disabled():  # shown in every run, not only when the test fails
        print("\n".join(["", f"{provider}: pages at {WIDTHS} px", *report]))
    assert problems == []
