"""The web app through a browser's eyes: werkzeug's test Client, with Fitbit faked."""

import dataclasses
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from conftest import (
    ACCESS_TOKEN,
    AUTH_CODE,
    PROFILE_URL,
    REFRESH_TOKEN,
    SECRETS,
    STEPS_URL,
    fitbit_error,
    listening,
    profile_body,
    sign_in,
    start_sign_in,
    steps_body,
    token_body,
    token_calls,
)
from freezegun import freeze_time
from peewee import OperationalError
from responses import matchers
from werkzeug.serving import make_server
from werkzeug.test import Client

import fitbit_legacy
import fitbit_oauth_app
import models
import oauth
import sessions
from fitbit_oauth_app import create_app
from middleware import CallbackLogHandler
from models import BrowserSession, PendingSignIn, User
from sandbox import FitbitStandIn
from settings import config_from_env


def page(response):
    return response.get_data(as_text=True)


def csrf_token(browser):
    match = re.search(r'name="csrf_token" value="([^"]+)"', page(browser.get("/")))
    return match.group(1)


def session_cookie(browser):
    cookie = browser.get_cookie("session")
    return cookie.value if cookie else None


def callback(browser, state, **params):
    """Come back from Fitbit to the callback with an authorization code and `state`."""
    query = {"code": AUTH_CODE, "state": state, **params}
    return browser.get("/auth/callback", query_string=query)


# --- The whole flow ---------------------------------------------------------------------


def test_whole_sign_in_flow(browser, fitbit):
    query = start_sign_in(browser)
    cookie_before = session_cookie(browser)
    pending = PendingSignIn.get()
    assert query["state"] == pending.state
    assert query["code_challenge"] == oauth.code_challenge(pending.code_verifier)

    fitbit.post(
        fitbit_legacy.TOKEN_URL,
        json=token_body(),
        match=[
            matchers.urlencoded_params_matcher(
                {
                    "grant_type": "authorization_code",
                    "code": AUTH_CODE,
                    "redirect_uri": "http://localhost:4000/auth/callback",
                    "code_verifier": pending.code_verifier,
                    "client_id": "23TEST",
                }
            )
        ],
    )
    fitbit.get(
        PROFILE_URL,
        json=profile_body("Alex"),
        match=[matchers.header_matcher({"Authorization": f"Bearer {ACCESS_TOKEN}"})],
    )
    response = callback(browser, query["state"])

    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    user = User.get()
    assert (user.fitbit_id, user.display_name) == ("ABC123", "Alex")
    assert (user.access_token, user.refresh_token) == (ACCESS_TOKEN, REFRESH_TOKEN)
    assert user.scope == "activity profile"
    assert PendingSignIn.select().count() == 0
    # A new session id at sign-in: an id known before it (session fixation) is now worthless.
    assert session_cookie(browser) != cookie_before
    assert BrowserSession.select().count() == 1

    fitbit.get(STEPS_URL, json=steps_body())
    home = page(browser.get("/"))
    assert "You are signed in with Fitbit." in home  # the flash
    assert home.count("Hello") == 1  # and the greeting, once
    assert "Hello, Alex" in home  # the profile the callback just fetched
    assert "4,200</strong> steps today" in home
    assert 'action="/auth/revoke"' in home and 'action="/logout"' in home


def test_signed_out_home_page_offers_sign_in(browser):
    response = browser.get("/")
    assert response.status_code == 200
    assert 'href="/auth"' in page(response)


def test_returning_user_is_updated_not_duplicated(browser, fitbit):
    with freeze_time("2026-11-01 09:00:00"):
        sign_in(browser, fitbit, name="Alex")
    created = User.get().created_at
    with freeze_time("2026-11-20 09:00:00"):
        sign_in(Client(browser.application), fitbit, name="Alexandra", access_token="second")
    assert User.select().count() == 1
    user = User.get()
    assert (user.display_name, user.access_token) == ("Alexandra", "second")
    assert user.created_at == created
    assert user.updated_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_flash_message_is_shown_once(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    assert "You are signed in with Fitbit." in page(browser.get("/"))
    assert "You are signed in with Fitbit." not in page(browser.get("/"))


def test_session_cookie_attributes(app, browser):
    response = browser.get("/auth")
    cookie = response.headers["Set-Cookie"]
    value = re.match(r"session=([^;]+)", cookie).group(1)
    assert len(value) >= 43  # 32 random bytes
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="):
        assert attribute in cookie
    assert "Secure" not in cookie  # plain http on localhost
    https = Client(app).get("/auth", base_url="https://localhost")
    assert "Secure" in https.headers["Set-Cookie"]
    # Only a keyed hash of the id is stored, never the id itself.
    assert BrowserSession.get_or_none(BrowserSession.key == value) is None


@pytest.mark.parametrize("trusted", [True, False], ids=["TRUST_PROXY=1", "by-default"])
def test_the_cookie_is_secure_behind_a_trusted_tls_proxy(config, trusted):
    app = create_app(dataclasses.replace(config, trust_proxy=trusted))
    response = Client(app).get("/auth", headers={"X-Forwarded-Proto": "https"})
    assert ("Secure" in response.headers["Set-Cookie"]) is trusted


def test_trust_proxy_setting():
    assert config_from_env({"TRUST_PROXY": "1"}, 4000).trust_proxy
    assert not config_from_env({}, 4000).trust_proxy


def assert_security_headers(headers):
    assert headers["Content-Security-Policy"].startswith("default-src ")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"]
    assert headers["Cache-Control"] == "no-store"


@pytest.fixture
def sandbox_browser(tmp_path):
    """A browser on the app in sandbox mode: the stand-in is mounted at /sandbox."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'sb.db'}", "SANDBOX_DATABASE": ":memory:"}
    config = config_from_env(env, 4000)
    return Client(create_app(config))


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/", 200),
        ("GET", "/users", 200),
        ("GET", "/auth", 302),
        ("GET", "/no-such-page", 404),
        ("GET", "/logout", 405),
        ("POST", "/logout", 403),
        ("GET", "/static/style.css", 200),
        ("GET", "/sandbox/oauth2/authorize", 400),  # the stand-in's HTML error page
        ("GET", "/sandbox/1/user/-/profile.json", 401),  # its JSON error
        ("GET", "/sandbox/avatars/7QW2XR.svg", 200),
    ],
)
def test_security_headers_on_every_kind_of_response(sandbox_browser, method, path, status):
    response = sandbox_browser.open(path, method=method)
    response.close()
    assert response.status_code == status
    assert_security_headers(response.headers)


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


def test_the_header_names_the_app_and_is_no_sign_in_button(browser, fitbit):
    sign_in(browser, fitbit)
    home_link = re.search(r'<a class="home"[^>]*>([^<]+)</a>', page(browser.get("/"))).group(1)
    assert home_link == "OAuth 2.0 with Fitbit"


def test_sign_out_and_disconnect_look_different_and_say_what_they_do(browser, fitbit):
    sign_in(browser, fitbit)
    text = page(browser.get("/"))
    assert '<button class="secondary" type="submit">Sign out</button>' in text
    assert '<button class="danger" type="submit">Disconnect</button>' in text
    assert "This browser forgets you. The app keeps its access" in text
    assert "Fitbit revokes this app's access, and your tokens here are deleted." in text


def test_a_python_without_the_packages_is_told_what_to_run(tmp_path):
    # -S leaves out site-packages, like the system's Python without the virtualenv.
    script = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fitbit_oauth_app.py")
    ran = subprocess.run(
        [sys.executable, "-S", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert ran.returncode == 1
    assert "Run `make run`" in ran.stderr and "Traceback" not in ran.stderr


def test_a_browser_on_127_0_0_1_is_sent_to_localhost_before_signing_in(app):
    # The redirect URI says localhost: a cookie set for 127.0.0.1 would not come back.
    response = Client(app).get("/auth", base_url="http://127.0.0.1:4000")
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost:4000/auth"
    assert PendingSignIn.select().count() == 0
    # Any other host name is left alone: no redirect can be steered by the Host header.
    elsewhere = Client(app).get("/auth", base_url="http://evil.example")
    assert elsewhere.headers["Location"].startswith(fitbit_legacy.AUTHORIZE_URL)


def test_redirect_uri_ignores_the_host_header(browser):
    response = browser.get("/auth", headers={"Host": "evil.example"})
    location = response.headers["Location"]
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A4000%2Fauth%2Fcallback" in location
    assert "evil.example" not in location


# --- State --------------------------------------------------------------------------------


def test_forged_state_is_refused_without_a_token_request(browser, fitbit):
    start_sign_in(browser)
    response = callback(browser, "forged")
    assert response.status_code == 400
    assert len(fitbit.calls) == 0
    assert PendingSignIn.select().count() == 1  # the real sign-in can still finish


def test_state_from_another_browser_is_refused(app, browser, fitbit):
    query = start_sign_in(browser)
    other = Client(app)
    start_sign_in(other)
    response = callback(other, query["state"])
    assert response.status_code == 400
    assert len(fitbit.calls) == 0


def test_replayed_callback_is_refused(browser, fitbit):
    query = start_sign_in(browser)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    fitbit.get(PROFILE_URL, json=profile_body())
    assert callback(browser, query["state"]).status_code == 302
    assert callback(browser, query["state"]).status_code == 400
    assert len(token_calls(fitbit)) == 1


@pytest.mark.parametrize(
    "back_at, status, token_requests",
    [("12:10:00", 302, 1), ("12:10:01", 400, 0)],
    ids=["at-ten-minutes", "one-second-later"],
)
def test_sign_in_expires_after_ten_minutes(browser, fitbit, back_at, status, token_requests):
    with freeze_time("2026-11-23 12:00:00"):
        query = start_sign_in(browser)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    fitbit.get(PROFILE_URL, json=profile_body())
    with freeze_time(f"2026-11-23 {back_at}"):
        assert callback(browser, query["state"]).status_code == status
    assert len(token_calls(fitbit)) == token_requests


def start_without_cookies(app, address="192.0.2.7"):
    return Client(app).get("/auth", environ_base={"REMOTE_ADDR": address})


def test_one_address_can_have_only_so_many_sign_ins_in_flight(app):
    cap = sessions.MAX_SIGN_INS_PER_ADDRESS
    with freeze_time("2026-11-23 12:00:00") as clock:
        statuses = [start_without_cookies(app).status_code for _ in range(cap + 5)]
        assert statuses == [302] * cap + [429] * 5
        refused = start_without_cookies(app)
        assert refused.headers["Retry-After"] == "600"
        assert "Too many sign-ins" in page(refused)
        # Nothing piles up past the cap, and other addresses are not affected.
        assert (BrowserSession.select().count(), PendingSignIn.select().count()) == (cap, cap)
        assert start_without_cookies(app, address="198.51.100.1").status_code == 302
        clock.tick(models.SIGN_IN_LIFETIME + timedelta(seconds=1))
        assert start_without_cookies(app).status_code == 302


def test_each_sign_in_started_clears_a_batch_of_unusable_rows(app):
    batch = sessions.PRUNE_BATCH
    with freeze_time("2026-11-23 12:00:00") as clock:
        for n in range(2 * batch + 5):
            start_without_cookies(app, address=f"192.0.2.{n}")
        clock.tick(models.ANONYMOUS_SESSION_LIFETIME + timedelta(seconds=1))
        left = []
        for _ in range(3):
            start_without_cookies(app)
            left.append((PendingSignIn.select().count(), BrowserSession.select().count()))
    # Each start deletes at most a batch of stale sign-ins and a batch of the sessions they
    # leave behind, and adds one of each.
    assert left == [(batch + 6, batch + 6), (7, 7), (3, 3)]


def test_sessions_that_signed_in_outlive_the_anonymous_ones(app, browser, fitbit):
    with freeze_time("2026-11-23 12:00:00") as clock:
        sign_in(browser, fitbit)
        start_without_cookies(app)
        clock.tick(models.ANONYMOUS_SESSION_LIFETIME + timedelta(seconds=1))
        start_without_cookies(app)
        assert BrowserSession.select().count() == 2  # the signed-in one and the newest
        assert "Sign out" in page(browser.get("/"))
        clock.tick(models.SESSION_LIFETIME)
        start_without_cookies(app)
        assert "Sign out" not in page(browser.get("/"))
    assert BrowserSession.select().where(BrowserSession.user.is_null(False)).count() == 0


def test_callback_without_any_session_is_refused(browser, fitbit):
    response = callback(browser, "x" * 43)
    assert response.status_code == 400
    assert len(fitbit.calls) == 0


def test_callback_without_state_is_refused_even_with_a_sign_in_in_flight(browser, fitbit):
    start_sign_in(browser)
    response = browser.get("/auth/callback", query_string={"code": AUTH_CODE})
    assert response.status_code == 400
    assert "no state parameter" in page(response)
    assert len(fitbit.calls) == 0
    assert PendingSignIn.select().count() == 1  # the real answer can still come back


@pytest.mark.parametrize("days, signed_in", [(13, True), (14, False)])
def test_sessions_expire_on_the_server_whatever_the_browser_keeps(browser, fitbit, days, signed_in):
    with freeze_time("2026-11-01 12:00:00") as clock:
        sign_in(browser, fitbit)
        cookie = session_cookie(browser)
        clock.tick(timedelta(days=days, seconds=1))
        # A browser that ignores Max-Age, or a stolen cookie, sends the id all the same.
        browser.set_cookie("session", cookie)
        assert ("Sign out" in page(browser.get("/"))) is signed_in


def test_only_the_latest_sign_in_of_a_browser_counts(browser, fitbit):
    first = start_sign_in(browser)
    start_sign_in(browser)
    response = callback(browser, first["state"])
    assert response.status_code == 400
    assert len(fitbit.calls) == 0


# --- Bad input never gives a 500 --------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "code=abc",  # no state
        "state={state}",  # no code
        "code=a&code=b&state={state}",
        "code=abc&state={state}&state={state}",
        "code=" + "a" * 513 + "&state={state}",
        "code=abc&state=" + "s" * 513,
        "code=%FF&state={state}",
        "code=%C3%A9&state={state}",
        "code=abc&state=%FF",
        "code=abc&state=%C3%A9{state}",
        "code=abc&state=",
        "code=a%00b&state={state}",
        "error=access_denied&error=other&state={state}",
    ],
)
def test_bad_callback_input_is_a_400_without_a_token_request(browser, fitbit, query):
    state = start_sign_in(browser)["state"]
    response = browser.get("/auth/callback?" + query.format(state=state))
    assert response.status_code == 400
    assert len(fitbit.calls) == 0


def test_access_denied_is_a_friendly_flash_and_ends_the_sign_in(browser, fitbit):
    state = start_sign_in(browser)["state"]
    response = browser.get(
        "/auth/callback", query_string={"error": "access_denied", "state": state}
    )
    assert response.status_code == 302
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "You chose not to connect" in page(browser.get("/"))
    assert len(fitbit.calls) == 0
    assert PendingSignIn.select().count() == 0
    assert User.select().count() == 0


def test_error_description_is_never_rendered(browser, fitbit):
    state = start_sign_in(browser)["state"]
    browser.get(
        "/auth/callback",
        query_string={
            "error": "server_error",
            "error_description": "<script>alert(1)</script>",
            "state": state,
        },
    )
    home = page(browser.get("/"))
    assert "Fitbit did not complete the sign-in (server_error)" in home
    assert "<script>" not in home and "alert(1)" not in home


def test_error_code_is_escaped(browser, fitbit):
    state = start_sign_in(browser)["state"]
    browser.get("/auth/callback", query_string={"error": "<b>x</b>", "state": state})
    home = page(browser.get("/"))
    assert "<b>x</b>" not in home and "&lt;b&gt;x&lt;/b&gt;" in home


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


# --- Signed in: refresh and its failures --------------------------------------------------


def test_home_page_refreshes_tokens_about_to_expire(browser, fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit)
    fitbit.post(
        fitbit_legacy.TOKEN_URL, json=token_body(access_token="fresh", refresh_token="fresh-r")
    )
    fitbit.get(PROFILE_URL, json=profile_body())
    with freeze_time("2026-11-23 15:56:00"):  # four minutes before the 8-hour expiry
        assert browser.get("/").status_code == 200
    assert len(token_calls(fitbit)) == 2  # the sign-in, then the refresh
    assert (User.get().access_token, User.get().refresh_token) == ("fresh", "fresh-r")


def test_a_refresh_held_by_another_worker_asks_to_retry_then_goes_on(browser, fitbit, monkeypatch):
    monkeypatch.setattr(oauth, "LEASE_POLLS", 3)
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit)
    fitbit.post(
        fitbit_legacy.TOKEN_URL, json=token_body(access_token="fresh", refresh_token="fresh-r")
    )
    with freeze_time("2026-11-23 17:00:00") as clock:
        # A worker took the lease and died before Fitbit answered it.
        alex = User.by_fitbit_id("ABC123")
        User.take_lease(alex.id, ACCESS_TOKEN, datetime.now(UTC) + oauth.REFRESH_LEASE)
        response = browser.get("/")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "Try again in a few seconds" in page(response)
        assert len(token_calls(fitbit)) == 1  # only the sign-in's
        clock.tick(oauth.REFRESH_LEASE + timedelta(seconds=1))
        response = browser.get("/")
    assert response.status_code == 200 and "steps today" in page(response)
    assert len(token_calls(fitbit)) == 2
    assert User.get().refresh_token == "fresh-r"


def test_dead_refresh_token_clears_tokens_and_asks_to_reconnect(browser, fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit)
    fitbit.post(fitbit_legacy.TOKEN_URL, status=400, json=fitbit_error("invalid_grant"))
    with freeze_time("2026-11-23 17:00:00"):
        response = browser.get("/")
    assert response.status_code == 200
    assert "Connect again" in page(response)
    user = User.get()
    assert (user.access_token, user.refresh_token, user.expires_at) == (None, None, None)
    assert "needs reconnecting" in page(browser.get("/users"))


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


# --- Disconnect and sign out --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/auth/revoke", "/logout"])
@pytest.mark.parametrize("token", [None, "", "wrong", "é"])
def test_posts_without_the_csrf_token_are_refused_and_change_nothing(browser, fitbit, path, token):
    sign_in(browser, fitbit)
    cookie = session_cookie(browser)
    data = {} if token is None else {"csrf_token": token}
    response = browser.post(path, data=data)
    assert response.status_code == 403
    assert User.get().refresh_token == REFRESH_TOKEN
    assert session_cookie(browser) == cookie
    assert BrowserSession.get().user_id == User.get().id
    assert len(fitbit.calls) == 2  # the sign-in's; no revoke


def test_csrf_token_of_another_browser_is_refused(app, browser, fitbit):
    sign_in(browser, fitbit)
    other = Client(app)
    sign_in(other, fitbit, name="Sam", user_id="SAM1")
    fitbit.get(PROFILE_URL, json=profile_body())
    response = browser.post("/logout", data={"csrf_token": csrf_token(other)})
    assert response.status_code == 403


def test_get_is_not_allowed_on_the_posts(browser):
    assert browser.get("/logout").status_code == 405
    assert browser.get("/auth/revoke").status_code == 405


def test_disconnect_revokes_at_fitbit_and_forgets_the_tokens(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    token = csrf_token(browser)
    fitbit.post(
        fitbit_legacy.REVOKE_URL,
        json={},
        match=[matchers.urlencoded_params_matcher({"token": REFRESH_TOKEN})],
    )
    response = browser.post("/auth/revoke", data={"csrf_token": token})
    assert response.status_code == 302
    assert User.get().refresh_token is None and User.get().access_token is None
    home = page(browser.get("/"))
    assert "Fitbit has revoked" in home
    assert "Connect again" in home


@pytest.mark.parametrize(
    "answer", [{"status": 500, "body": "oops"}, {"body": requests.ConnectionError()}]
)
def test_disconnect_forgets_the_tokens_even_when_fitbit_fails(browser, fitbit, answer):
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    token = csrf_token(browser)
    fitbit.post(fitbit_legacy.REVOKE_URL, **answer)
    assert browser.post("/auth/revoke", data={"csrf_token": token}).status_code == 302
    assert User.get().refresh_token is None
    assert "https://www.fitbit.com/settings/applications" in page(browser.get("/"))


def test_sign_out_forgets_the_session(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    old_cookie = session_cookie(browser)
    response = browser.post("/logout", data={"csrf_token": csrf_token(browser)})
    assert response.status_code == 302
    home = page(browser.get("/"))
    assert "You are signed out." in home and 'href="/auth"' in home
    # The old cookie is dead, even if someone kept a copy.
    browser.set_cookie("session", old_cookie)
    assert 'href="/auth"' in page(browser.get("/"))
    assert User.get().refresh_token == REFRESH_TOKEN  # signing out is not disconnecting


# --- The users page -----------------------------------------------------------------------


def test_users_page_lists_users_without_their_tokens(app, browser, fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit, name="Alex")
        sign_in(Client(app), fitbit, name="Sam", user_id="SAM1")
        User.clear_tokens(User.by_fitbit_id("SAM1").id)
        response = browser.get("/users")
    text = page(response)
    assert "Alex" in text and "ABC123" in text and "expires in 8 hours" in text
    assert "Sam" in text and "SAM1" in text and "needs reconnecting" in text
    for secret in SECRETS:
        assert secret not in text


# --- Secrets never reach output -----------------------------------------------------------


def test_no_secret_in_any_page_cookie_or_log(app, browser, fitbit, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    responses = [browser.get("/"), browser.get("/auth")]
    responses.append(sign_in(browser, fitbit))
    fitbit.get(PROFILE_URL, json=profile_body())
    responses += [browser.get("/"), browser.get("/users")]
    # Failures log too: make Fitbit echo the token in its error message.
    fitbit.replace(
        "GET",
        PROFILE_URL,
        status=401,
        json=fitbit_error("invalid_token", f"Access token invalid: {ACCESS_TOKEN}"),
    )
    responses.append(browser.get("/"))
    fitbit.post(fitbit_legacy.REVOKE_URL, status=500, json=fitbit_error("system", REFRESH_TOKEN))
    responses.append(
        browser.post("/auth/revoke", data={"csrf_token": BrowserSession.get().csrf_token})
    )
    responses.append(browser.get("/"))

    output = capsys.readouterr()
    seen = [output.out, output.err, caplog.text]
    for response in responses:
        seen += [page(response), str(response.headers)]
    for secret in SECRETS:
        for text in seen:
            assert secret not in text


def test_access_log_never_shows_the_code(app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=CallbackLogHandler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        requests.get(f"{url}/auth/callback?code={AUTH_CODE}&state=abc", timeout=5)
        requests.get(f"{url}/users?page=2", timeout=5)
    finally:
        server.shutdown()
        thread.join()
    assert "GET /auth/callback?[redacted]" in caplog.text
    assert "GET /users?page=2" in caplog.text  # other lines are left as they were
    assert AUTH_CODE not in caplog.text


def raw_exchange(port, data, done_sending=True):
    """Send bytes as they are, and return the answer: all of it, or with done_sending=False
    its first line, the connection left open as if more were on the way."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(data)
        if not done_sending:
            return connection.makefile("rb").readline().decode("latin-1")
        connection.shutdown(socket.SHUT_WR)
        return connection.makefile("rb").read().decode("latin-1")


@pytest.mark.parametrize(
    "request_line, status",
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1", "414"),
        (b"BOGUS", "400"),
        (b"GET / HTTP/9.9", "505"),
        (b"GET / HTTP/1.1\r\nHost: " + b"h" * 70_000, "431"),
    ],
    ids=["huge-url", "no-method", "unknown-version", "huge-header"],
)
def test_malformed_request_lines_are_answered_not_dropped(app, capfd, request_line, status):
    with listening() as (server,):
        server.app = app
        answer = raw_exchange(server.server_port, request_line + b"\r\n\r\n")
    # Python's server answers a request line it cannot read in HTTP/0.9, without a status
    # line, so the code is looked for in the error page as well.
    assert answer.startswith(f"HTTP/1.0 {status} ") or f"Error code: {status}" in answer
    assert "Traceback" not in capfd.readouterr().err


def test_a_huge_body_is_refused_before_it_is_read(app, browser, fitbit):
    sign_in(browser, fitbit)
    token = csrf_token(browser)
    cookie = session_cookie(browser)
    with listening() as (server,):
        server.app = app
        head = (
            "POST /logout HTTP/1.1\r\nHost: localhost\r\n"
            f"Cookie: session={cookie}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: 300000000\r\n\r\n"
            f"csrf_token={token}&"
        )
        # Only the start of the 300 MB is sent: an answer proves nothing waited for the rest.
        answer = raw_exchange(server.server_port, head.encode(), done_sending=False)
    assert answer.startswith("HTTP/1.1 413 ")
    assert BrowserSession.select().count() == 1  # not signed out


def test_users_page_says_when_a_token_has_lapsed(browser, fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit)
    with freeze_time("2026-11-23 17:00:00"):
        text = page(browser.get("/users"))
    assert "expired 1 hour ago" in text


# --- Configuration and start-up -------------------------------------------------------


def test_without_a_client_id_the_app_uses_the_stand_in():
    config = config_from_env({}, 4000)
    assert config.sandbox and config.configured
    assert config.client.authorize_url == "http://localhost:4000/sandbox/oauth2/authorize"
    assert config.client.token_url == "http://localhost:4000/sandbox/oauth2/token"
    assert config.client.api_url == "http://localhost:4000/sandbox"
    assert config.client.redirect_uri == "http://localhost:4000/auth/callback"


def test_fitbit_sandbox_forces_the_stand_in_even_with_credentials():
    env = {"FITBIT_CLIENT_ID": "REAL12", "FITBIT_CLIENT_SECRET": "real", "FITBIT_SANDBOX": "1"}
    config = config_from_env(env, 4000)
    assert config.sandbox
    assert config.client.client_id != "REAL12"  # the real secret never goes to the stand-in


def test_with_credentials_the_app_talks_to_fitbit():
    env = {"FITBIT_CLIENT_ID": "REAL12", "FITBIT_CLIENT_SECRET": "real", "PORT": "4000"}
    config = config_from_env(env, 5000)
    assert not config.sandbox
    assert (config.client.client_id, config.client.client_secret) == ("REAL12", "real")
    assert config.client.authorize_url == "https://www.fitbit.com/oauth2/authorize"
    assert config.client.token_url == "https://api.fitbit.com/oauth2/token"
    assert config.client.redirect_uri == "http://localhost:5000/auth/callback"


@pytest.mark.parametrize(
    "environment, port",
    [({}, "4107"), ({"PORT": "4106"}, "4106")],
    ids=[".env-fills-in", "environment-wins"],
)
def test_make_takes_from_env_file_only_what_the_environment_leaves_unset(
    tmp_path, environment, port
):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shutil.copy(os.path.join(root, "Makefile"), tmp_path)
    (tmp_path / ".env").write_text("PORT=4107\nFITBIT_SCOPES=activity profile\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "FITBIT_SCOPES", "MAKEFLAGS")}
    shown = subprocess.run(
        ["make", "-s", "--eval", "show: ; @echo $$PORT $$FITBIT_SCOPES", "show"],
        cwd=tmp_path,
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == f"{port} activity profile"


def test_the_example_settings_let_the_redirect_uri_follow_the_port():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".env.example")) as example:
        lines = [line.strip() for line in example if line.strip() and line[0] != "#"]
    settings = dict(line.split("=", 1) for line in lines)
    assert settings["FITBIT_REDIRECT_URI"] == ""
    assert config_from_env({**settings, "PORT": "4106"}, 4106).client.redirect_uri == (
        "http://localhost:4106/auth/callback"
    )


def test_in_real_mode_the_page_and_the_start_up_say_where_fitbit_is(
    monkeypatch, tmp_path, capsys, browser
):
    footer = page(browser.get("/"))
    assert (
        "Talking to the legacy Fitbit Web API: sign-in at <code>https://www.fitbit.com/oauth2/authorize</code>"
        in (footer)
    )
    assert "data\n    from <code>https://api.fitbit.com</code>" in footer
    monkeypatch.setattr(fitbit_oauth_app, "run_simple", lambda *args, **kwargs: None)
    monkeypatch.setenv("FITBIT_CLIENT_ID", "REAL12")
    monkeypatch.setenv("FITBIT_CLIENT_SECRET", "real-secret")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'real.db'}")
    fitbit_oauth_app.main([])
    out = capsys.readouterr().out
    assert "tokens at https://api.fitbit.com/oauth2/token" in out
    assert "real-secret" not in out


def test_client_id_without_a_secret_explains_what_to_set(tmp_path):
    config = config_from_env(
        {"FITBIT_CLIENT_ID": "REAL12", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, 4000
    )
    browser = Client(create_app(config))
    assert "FITBIT_CLIENT_SECRET" in page(browser.get("/"))
    assert browser.get("/auth").status_code == 503


def test_main_serves_localhost_4000_threaded_without_debugger(monkeypatch, tmp_path, capsys):
    served = {}
    monkeypatch.setattr(
        fitbit_oauth_app,
        "run_simple",
        lambda host, port, app, **options: served.update(host=host, port=port, options=options),
    )
    for name in ("FITBIT_CLIENT_ID", "PORT", "FITBIT_SANDBOX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'main.db'}")
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    fitbit_oauth_app.main([])
    assert (served["host"], served["port"]) == ("localhost", 4000)
    assert served["options"]["threaded"] is True
    assert served["options"]["use_debugger"] is False
    assert served["options"]["request_handler"] is CallbackLogHandler
    out = capsys.readouterr().out
    assert "open http://localhost:4000" in out
    assert "local stand-in for Fitbit" in out


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


def test_no_next_parameter_can_send_the_user_elsewhere(browser, fitbit):
    for target in ("//evil.example", "/\\evil.example", "https://evil.example"):
        browser.get("/auth", query_string={"next": target})
        state = PendingSignIn.get().state
        fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
        fitbit.get(PROFILE_URL, json=profile_body())
        response = callback(browser, state, next=target)
        assert response.headers["Location"] == "/"
