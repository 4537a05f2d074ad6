"""pages.py: what a user sees when something goes wrong, in the layout and in words they
can act on, and the filters that put times into words."""

import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests
from conftest import (
    PROFILE_URL,
    STEPS_URL,
    assert_security_headers,
    callback,
    csrf_token,
    fitbit_error,
    page,
    profile_body,
    sign_in,
    start_sign_in,
    steps_body,
    token_body,
    token_calls,
)
from freezegun import freeze_time
from peewee import OperationalError
from werkzeug.test import Client

import fitbit_legacy
from models import BrowserSession, User
from pages import in_words
from sandbox import FitbitStandIn

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_an_unexpected_error_is_a_500_page_in_the_layout(app, browser, monkeypatch, caplog):
    def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app, "on_users", broken)
    response = browser.get("/users")
    assert response.status_code == 500
    assert "Server error" in page(response) and '<a class="home"' in page(response)
    assert "a bug" not in page(response) and "Traceback" not in page(response)
    assert_security_headers(response.headers)
    assert "Unexpected error on /users" in caplog.text


def test_a_busy_database_is_a_503_page_that_asks_to_retry(browser, monkeypatch):
    def locked(key):
        raise OperationalError("database is locked")

    monkeypatch.setattr(BrowserSession, "find", locked)
    browser.set_cookie("session", "x" * 43)
    response = browser.get("/")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "The database is busy" in page(response) and '<a class="home"' in page(response)
    assert_security_headers(response.headers)


def test_pages_name_their_icon_so_browsers_do_not_ask_for_favicon_ico(browser):
    assert '<link rel="icon" href="/static/favicon.svg"' in page(browser.get("/"))
    icon = browser.get("/static/favicon.svg")
    assert (icon.status_code, icon.mimetype) == (200, "image/svg+xml")
    icon.close()


def callback_with_token_answer(browser, fitbit, **answer):
    state = start_sign_in(browser)["state"]
    fitbit.post(fitbit_legacy.TOKEN_URL, **answer)
    fitbit.get(PROFILE_URL, json=profile_body())
    return callback(browser, state)


@pytest.mark.parametrize(
    "answer, status, text",
    [
        ({"status": 500, "json": fitbit_error("system")}, 502, "Fitbit is unavailable"),
        ({"status": 503, "body": "<html>down</html>"}, 502, "Fitbit is unavailable"),
        ({"body": requests.ReadTimeout()}, 502, "Fitbit is unavailable"),
        ({"body": requests.ConnectionError()}, 502, "Fitbit is unavailable"),
        ({"status": 410, "body": ""}, 502, "retired"),
        ({"body": "<html>proxy</html>"}, 502, "nothing was stored"),
        ({"json": token_body(expires_in=-1)}, 502, "nothing was stored"),
        ({"status": 400, "json": fitbit_error("invalid_grant")}, 400, "sign in again"),
        ({"status": 401, "json": fitbit_error("invalid_client")}, 502, "FITBIT_CLIENT_ID"),
    ],
    ids=[
        "500",
        "503-html",
        "timeout",
        "connection",
        "410",
        "html",
        "bad-expiry",
        "used-code",
        "bad-client",
    ],
)
def test_token_endpoint_failures_give_a_clear_page(browser, fitbit, answer, status, text):
    response = callback_with_token_answer(browser, fitbit, **answer)
    assert response.status_code == status
    assert text in page(response)
    assert len(token_calls(fitbit)) == 1  # never retried
    assert User.select().count() == 0


@pytest.mark.parametrize(
    "answer, logged",
    [
        ({"body": requests.ConnectionError()}, "could not reach Fitbit (connection_error)"),
        ({"body": requests.ReadTimeout()}, "could not reach Fitbit (timeout)"),
        ({"status": 502, "body": "<html>bad gateway</html>"}, "Fitbit answered 502 unknown"),
    ],
    ids=["refused", "timeout", "answered-502"],
)
def test_the_log_says_whether_fitbit_answered_at_all(browser, fitbit, caplog, answer, logged):
    callback_with_token_answer(browser, fitbit, **answer)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"sign-in: {logged}"]


@freeze_time("2026-11-23 12:00:00")
def test_rate_limited_token_endpoint_says_when_to_try_again(browser, fitbit):
    response = callback_with_token_answer(
        browser,
        fitbit,
        status=429,
        json=fitbit_error("system"),
        headers={"Fitbit-Rate-Limit-Reset": "1500"},
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1500"
    assert "Try again at 12:25 UTC (in 25 minutes)" in page(response)


@pytest.mark.parametrize(
    "answer, text",
    [
        ({"status": 502, "body": "bad gateway"}, "Fitbit is unavailable"),
        ({"body": requests.ConnectTimeout()}, "Fitbit is unavailable"),
        ({"status": 410, "body": ""}, "retired"),
    ],
)
def test_home_page_when_fitbit_fails(browser, fitbit, answer, text):
    with freeze_time("2026-11-23 12:00:00"):
        sign_in(browser, fitbit)
    fitbit.replace("GET", PROFILE_URL, **answer)
    with freeze_time("2026-11-23 12:06:00"):  # past the cache's five minutes
        response = browser.get("/")
    assert response.status_code == 502
    assert text in page(response)


def test_every_template_is_autoescaped(app):
    for jinja in (app.pages.jinja, FitbitStandIn([]).jinja):
        assert jinja.autoescape is True
        html = jinja.get_template("error.html").render(
            message="<script>x</script>",
            title="t",
            url_for=lambda *a: "/",
            config=app.config,
            provider=app.dialect,
        )
        assert "&lt;script&gt;" in html and "<script>" not in html


@pytest.mark.parametrize(
    "offset, words",
    [
        (timedelta(0), "just now"),
        (timedelta(milliseconds=-300), "just now"),
        (timedelta(seconds=-5), "5 seconds ago"),
        (timedelta(hours=3, seconds=1), "in 3 hours"),
    ],
)
def test_times_in_words(offset, words):
    with freeze_time(T0):
        assert in_words(T0 + offset) == words


def test_a_panel_is_drawn_once_for_the_same_data_and_anew_for_others(app, browser, fitbit):
    """A panel depends on its data and the day alone, so it is drawn once for each: the
    page carries exactly what drawing it afresh gives, and another user's counts get their
    own chart."""
    with freeze_time("2026-11-23 12:00:00"):
        sign_in(browser, fitbit)
        first = page(browser.get("/"))
        hits = app.pages.panel.cache_info().hits
        again = page(browser.get("/"))
        assert app.pages.panel.cache_info().hits == hits + 2  # the steps and the workouts
        today = T0.date()
        drawn = str(
            app.pages.draw_panel("steps", tuple(fitbit_legacy.read_steps(steps_body())), today)
        )
        assert "<figure>" in drawn and drawn in first and drawn in again

        other = Client(app)
        sign_in(other, fitbit, name="Sam", user_id="XYZ789")
        fitbit.replace("GET", STEPS_URL, json=steps_body((1200, 3400, 5600)))
        theirs = page(other.get("/"))
    assert drawn not in theirs
    series = tuple(fitbit_legacy.read_steps(steps_body((1200, 3400, 5600))))
    assert str(app.pages.draw_panel("steps", series, today)) in theirs


def test_an_answer_is_read_once_and_a_page_from_the_caches_is_the_page_without_them(
    app, browser, fitbit
):
    """What the dialect reads from an answer (the profile, the steps) is worked out once per
    answer text; a page served from that cache, and from the chart's, is byte for byte the
    page drawn with both empty."""
    import dashboard

    sign_in(browser, fitbit)
    browser.get("/")
    dashboard.read.cache_clear()
    app.pages.panel.cache_clear()
    cold = page(browser.get("/"))
    misses = dashboard.read.cache_info().misses
    warm = page(browser.get("/"))
    assert dashboard.read.cache_info().misses == misses  # nothing read again
    assert dashboard.read.cache_info().hits >= 2  # the profile and the steps
    assert warm == cold
    # Another user's answer is read on its own.
    other = Client(app)
    sign_in(other, fitbit, name="Sam", user_id="XYZ789")
    fitbit.replace("GET", STEPS_URL, json=steps_body((1200, 3400, 5600)))
    assert "5,600" in page(other.get("/")) and "5,600" not in page(browser.get("/"))


def test_the_signed_out_page_is_rendered_once_and_is_the_page_rendered_anew(app, browser, fitbit):
    """A browser without a session sees nobody's page: rendered once per mount point, and
    byte for byte, headers and all, what the template renders anew. A browser with a flash
    waiting gets its own page, and the next browser without a session does not see it."""
    first = Client(app).get("/")
    app.pages.pages.clear()
    anew = Client(app).get("/")
    assert (first.data, first.headers) == (anew.data, anew.headers)
    assert 'href="/users"' in page(first)
    mounted = Client(app).get("/", base_url="http://localhost/app/")
    assert 'href="/app/users"' in page(mounted) and 'href="/users"' not in page(mounted)
    assert Client(app).get("/").data == first.data  # each mount point its own
    sign_in(browser, fitbit)
    browser.post("/logout", data={"csrf_token": csrf_token(browser)})
    assert "You are signed out." in page(browser.get("/"))
    assert Client(app).get("/").data == first.data


def test_the_links_to_a_users_own_data_are_drawn_once_for_each_set_of_kinds(app, fitbit):
    """The signed-in page's Download my data and Delete my data depend on the kinds of data
    the user granted alone: drawn once for each (Pages.part), each user seeing the links of
    their own kinds, and each the same as drawn anew."""
    alex, sam = Client(app), Client(app)
    sign_in(alex, fitbit)
    sign_in(sam, fitbit, name="Sam", user_id="XYZ789", scope="profile")

    def own_data(browser):
        text = page(browser.get("/"))
        return re.search(r'<section class="own-data".*?</section>', text, re.S).group(0)

    with_steps, without = own_data(alex), own_data(sam)
    assert 'href="/my-data/steps.csv"' in with_steps and ".csv" not in without
    assert all('href="/my-data/delete"' in part for part in (with_steps, without))
    assert len(app.pages.parts) == 2
    app.pages.parts.clear()
    assert (own_data(alex), own_data(sam)) == (with_steps, without)
