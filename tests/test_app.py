"""The web app through a browser's eyes: werkzeug's test Client, with Fitbit faked."""

import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

# --- The whole flow ---------------------------------------------------------------------
from conftest import (
    ACCESS_TOKEN,
    AUTH_CODE,
    PROFILE_URL,
    REFRESH_TOKEN,
    SECRETS,
    STEPS_URL,
    callback,
    csrf_token,
    fitbit_error,
    held,
    listening,
    page,
    profile_body,
    raw_exchange,
    session_cookie,
    sign_in,
    start_sign_in,
    steps_body,
    token_body,
    token_calls,
)
from freezegun import freeze_time
from responses import matchers
from werkzeug.test import Client

import fitbit_legacy
import fitbit_oauth_app
import oauth
import token_store
from fitbit_oauth_app import create_app
from middleware import CallbackLogHandler
from models import BrowserSession, PendingSignIn, User
from settings import config_from_env


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
    assert (held(user).access_token, held(user).refresh_token) == (ACCESS_TOKEN, REFRESH_TOKEN)
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
    assert (user.display_name, held(user).access_token) == ("Alexandra", "second")
    assert user.created_at == created
    assert user.updated_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


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


def test_redirect_uri_ignores_the_host_header(browser):
    response = browser.get("/auth", headers={"Host": "evil.example"})
    location = response.headers["Location"]
    assert "redirect_uri=http%3A%2F%2Flocalhost%3A4000%2Fauth%2Fcallback" in location
    assert "evil.example" not in location


# --- State --------------------------------------------------------------------------------


# --- Bad input never gives a 500 --------------------------------------------------------


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
    assert (held(User.get()).access_token, held(User.get()).refresh_token) == ("fresh", "fresh-r")


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
        User.take_lease(
            alex.id, token_store.digest(ACCESS_TOKEN), datetime.now(UTC) + oauth.REFRESH_LEASE
        )
        response = browser.get("/")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
        assert "Try again in a few seconds" in page(response)
        assert len(token_calls(fitbit)) == 1  # only the sign-in's
        clock.tick(oauth.REFRESH_LEASE + timedelta(seconds=1))
        response = browser.get("/")
    assert response.status_code == 200 and "steps today" in page(response)
    assert len(token_calls(fitbit)) == 2
    assert held(User.get()).refresh_token == "fresh-r"


def test_dead_refresh_token_clears_tokens_and_asks_to_reconnect(browser, fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit)
    fitbit.post(fitbit_legacy.TOKEN_URL, status=400, json=fitbit_error("invalid_grant"))
    with freeze_time("2026-11-23 17:00:00"):
        response = browser.get("/")
    assert response.status_code == 200
    assert "Connect again" in page(response)
    user = User.get()
    assert (held(user).access_token, held(user).refresh_token, user.expires_at) == (
        None,
        None,
        None,
    )
    assert "needs reconnecting" in page(browser.get("/users"))


# --- Disconnect and sign out --------------------------------------------------------------


def test_get_is_not_allowed_on_the_posts(browser):
    assert browser.get("/logout").status_code == 405
    assert browser.get("/auth/revoke").status_code == 405


# --- The users page -----------------------------------------------------------------------


def test_users_page_lists_users_without_their_tokens(app, browser, fitbit):
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(browser, fitbit, name="Alex")
        sign_in(Client(app), fitbit, name="Sam", user_id="SAM1")
        token_store.clear_tokens(User.by_fitbit_id("SAM1").id)
        response = browser.get("/users")
    text = page(response)
    assert "Alex" in text and "ABC123" in text and "expires in 8 hours" in text
    assert "Sam" in text and "SAM1" in text and "needs reconnecting" in text
    for secret in SECRETS:
        assert secret not in text


def test_users_page_rows_are_drawn_once_per_wording_and_as_they_would_be_anew(app, fitbit):
    """Each row's markup is kept by what it says: the page from the kept rows is the page
    drawn with none kept, a row says something new as soon as time changes its words, and
    a name is escaped whoever drew it first."""
    with freeze_time("2026-11-23 08:00:00"):
        sign_in(Client(app), fitbit, name="<b>Alex</b>")
        sign_in(Client(app), fitbit, name="Sam", user_id="SAM1")
        warm = page(Client(app).get("/users"))
        app.pages.user_row.cache_clear()
        anew = page(Client(app).get("/users"))
    assert warm == anew
    assert "&lt;b&gt;Alex&lt;/b&gt;" in warm and "<b>Alex" not in warm
    assert warm.count("expires in 8 hours") == 2 and warm.count("just now") == 2
    with freeze_time("2026-11-23 09:30:00"):
        later = page(Client(app).get("/users"))
    assert later.count("expires in 6 hours") == 2 and later.count("1 hour ago") == 2
    assert [sorted(row._fields) for row in User.page_of(1, 50)][0] == sorted(
        [
            "display_name",
            "provider",
            "fitbit_id",
            "health_user_id",
            "connected",
            "expires_at",
            "last_sync_at",
        ]
    )  # whether there is a token, never one


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


# A DNS label is at most 63 characters: werkzeug refuses such a Host when it binds the URL map.
LONG_LABEL_HOST = "a" * 64 + ".example"


@pytest.mark.parametrize("provider", ["fitbit", "google"])
@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/"),
        ("GET", "/auth"),
        ("GET", "/auth/callback?code=x&state=y"),
        ("GET", "/users"),
        ("GET", "/trace"),
        ("POST", "/logout"),
        ("GET", "/sandbox/oauth2/authorize"),
        ("POST", "/sandbox/oauth2/token"),
        ("GET", "/sandbox/google/v4/users/me/identity"),
        ("POST", "/sandbox/google/token"),
    ],
)
def test_a_host_no_machine_can_have_is_a_400_not_a_500(tmp_path, provider, method, path):
    env = {
        "PROVIDER": provider,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'host.db'}",
        "SANDBOX_DATABASE": ":memory:",
    }
    browser = Client(create_app(config_from_env(env, 4000)))
    response = browser.open(path, method=method, headers={"Host": LONG_LABEL_HOST})
    assert response.status_code == 400
    assert response.headers["Content-Security-Policy"] and response.headers["Cache-Control"]
    if not path.startswith("/sandbox"):
        assert "Bad Request" in page(response)  # the app's own page, in its layout
        assert 'href="/static/style.css"' in page(response)


@pytest.mark.parametrize("provider, name", [("fitbit", "Fitbit"), ("google", "Google Health")])
def test_the_tab_the_header_and_the_start_up_line_name_the_provider(
    monkeypatch, tmp_path, capsys, provider, name
):
    monkeypatch.setattr(fitbit_oauth_app, "run_simple", lambda *args, **options: None)
    for variable in ("FITBIT_CLIENT_ID", "GOOGLE_CLIENT_ID", "PORT", "FITBIT_SANDBOX"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PROVIDER", provider)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'names.db'}")
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    fitbit_oauth_app.main([])
    assert f" * Sign in with {name}: open http://localhost:4000" in capsys.readouterr().out

    env = {"PROVIDER": provider, "DATABASE_URL": f"sqlite:///{tmp_path / 'names.db'}"}
    browser = Client(create_app(config_from_env({**env, "SANDBOX_DATABASE": ":memory:"}, 4000)))
    for path in ("/", "/users", "/trace", "/no-such-page"):
        text = page(browser.get(path))
        title = re.search(r"<title>([^<]+)</title>", text).group(1)
        header = re.search(r'<a class="home"[^>]*>([^<]+)</a>', text).group(1)
        assert title.endswith(f"Sign in with {name}") and header == f"OAuth 2.0 with {name}"
