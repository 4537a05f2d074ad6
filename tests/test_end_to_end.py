"""The app and the stand-in on real sockets, driven with requests the way a browser would:
every redirect followed, every form read from the page, no in-process shortcut."""

import html
import logging
import re
import sqlite3
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import create_app, held, listening, running_app, url_of
from freezegun import freeze_time

import fitbit_legacy
import oauth
from models import PendingSignIn, User
from sandbox import FitbitStandIn, RegisteredClient
from settings import Config

ALEX, SAM = "7QW2XR", "9KD3MS"


class Browser:
    def __init__(self, base_url):
        self.base_url = base_url
        self.http = requests.Session()
        self.page = None

    def get(self, path):
        self.page = self.http.get(self.base_url + path, timeout=10)
        return self.page

    def submit(self, action):
        """Press a button on the current page: its form and CSRF token come from the page."""
        token = re.search(r'name="csrf_token" value="([^"]+)"', self.page.text).group(1)
        self.page = self.http.post(self.base_url + action, data={"csrf_token": token}, timeout=10)
        return self.page

    def sign_in(self, decision="allow", user=None, scopes=None):
        """Through the stand-in's consent page, as `user` (the first person offered unless
        given), allowing `scopes` (every one offered unless given)."""
        consent = self.get("/auth")  # the app sends us to the stand-in's consent page
        assert "would like to access your data" in consent.text
        request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
        user = user or re.search(r'name="user_id" value="([^"]+)"', consent.text).group(1)
        if scopes is None:
            scopes = re.findall(r'name="scope" value="([^"]+)"', consent.text)
        form = {"request_id": request_id, "user_id": user, "decision": decision, "scope": scopes}
        self.page = self.http.post(consent.url.split("?")[0], data=form, timeout=10)
        return self.page

    def sign_in_noting_secrets(self, seen):
        """sign_in(), one redirect at a time, adding the PKCE verifier and the code to
        `seen`, for tests that look for them where they must never be."""
        consent = self.get("/auth")
        seen.append(PendingSignIn.get().code_verifier)
        request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
        user = re.search(r'name="user_id" value="([^"]+)"', consent.text).group(1)
        form = {"request_id": request_id, "user_id": user, "decision": "allow"}
        back = self.http.post(
            consent.url.split("?")[0],
            data={**form, "scope": re.findall(r'name="scope" value="([^"]+)"', consent.text)},
            allow_redirects=False,
            timeout=10,
        )
        seen.append(parse_qs(urlsplit(back.headers["Location"]).query)["code"][0])
        self.page = self.http.get(back.headers["Location"], timeout=10)
        return self.page


def stand_in_api(base_url, access_token):
    return requests.get(
        base_url + "/sandbox/1/user/-/profile.json",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    )


def test_sign_in_allow_greeting_and_returning_visit(live_app):
    browser = Browser(live_app)
    assert "You are signing in to a local stand-in for Fitbit" in browser.get("/").text
    page = browser.sign_in()
    assert page.url == live_app + "/"
    assert "You are signed in with Fitbit." in page.text and "Hello, Alex R." in page.text
    assert page.text.count("Hello") == 1  # one greeting, not a flash and a heading
    assert [r.status_code for r in page.history] == [302, 302]  # stand-in, then callback

    later = browser.get("/")
    assert "Hello, Alex R." in later.text and "You are signed in" not in later.text

    # Sign out, sign in again: the same user row, updated.
    assert "You are signed out." in browser.submit("/logout").text
    assert "Hello, Alex R." in browser.sign_in().text
    assert User.select().count() == 1


def test_two_people_are_two_users(live_app):
    Browser(live_app).sign_in(user=ALEX)
    assert "Hello, Sam K." in Browser(live_app).sign_in(user=SAM).text
    users = Browser(live_app).get("/users").text
    assert ALEX in users and SAM in users


def test_expiry_and_refresh(live_app):
    browser = Browser(live_app)
    with freeze_time("2026-11-23 12:00:00") as clock:
        browser.sign_in()  # the stand-in issues 10-minute tokens here
        first = User.get()
        clock.tick(timedelta(minutes=4))
        assert "Hello, Alex R." in browser.get("/").text
        assert held(User.get()).access_token == held(first).access_token  # not due yet

        clock.tick(timedelta(minutes=2))  # inside the five-minute leeway
        assert "Hello, Alex R." in browser.get("/").text
        second = User.get()
        assert held(second).access_token != held(first).access_token
        assert held(second).refresh_token != held(first).refresh_token

        clock.tick(timedelta(minutes=5))  # the first access token is past its life
        refused = stand_in_api(live_app, held(first).access_token)
        assert refused.json()["errors"][0]["errorType"] == "expired_token"
        assert stand_in_api(live_app, held(second).access_token).status_code == 200


def test_disconnect_revokes_at_the_stand_in(live_app):
    browser = Browser(live_app)
    browser.sign_in()
    access_token = held(User.get()).access_token
    page = browser.submit("/auth/revoke")
    assert "Fitbit has revoked" in page.text and "Connect again" in page.text
    assert held(User.get()).access_token is None
    assert stand_in_api(live_app, access_token).json()["errors"][0]["errorType"] == "invalid_token"


def test_deny(live_app):
    page = Browser(live_app).sign_in(decision="deny")
    assert page.url == live_app + "/"
    assert "You chose not to connect" in page.text
    assert User.select().count() == 0


@contextmanager
def app_beside_a_stand_in_alone(tmp_path, client_secret):
    """`python -m sandbox` on one port and the app on another, joined by FITBIT_*_URL, as a
    reader would run them. Yields a browser on the app."""
    with listening(2) as (app_server, fitbit_server):
        redirect_uri = f"{url_of(app_server)}/auth/callback"
        fitbit_server.app = FitbitStandIn(
            [RegisteredClient("ALONE1", "alone-secret", redirect_uri)]
        )
        root = url_of(fitbit_server)
        client = oauth.Client(
            fitbit_legacy,
            "ALONE1",
            client_secret,
            redirect_uri,
            authorize_url=f"{root}/oauth2/authorize",
            token_url=f"{root}/oauth2/token",
            revoke_url=f"{root}/oauth2/revoke",
            api_url=root,
        )
        app_server.app = create_app(Config(client, f"sqlite:///{tmp_path / 'alone.db'}"))
        yield Browser(url_of(app_server))


def test_stand_in_run_alone_with_the_app_pointed_at_it(tmp_path):
    with app_beside_a_stand_in_alone(tmp_path, "alone-secret") as browser:
        assert "local stand-in" not in browser.get("/").text  # real mode, as far as it knows
        page = browser.sign_in()
        assert "Hello, Alex R." in page.text
        # The avatar comes from the stand-in's own http origin, and the page may show it.
        avatar = re.search(r'<img class="avatar" src="(http://127\.0\.0\.1:\d+)/', page.text)
        policy = page.headers["Content-Security-Policy"]
        assert f"img-src 'self' https: {avatar.group(1)};" in policy
        assert "default-src 'self'" in policy


def test_app_with_the_wrong_secret_is_refused(tmp_path):
    with app_beside_a_stand_in_alone(tmp_path, "wrong-secret") as browser:
        page = browser.sign_in()
        assert page.status_code == 502
        assert "Fitbit did not recognise this app" in page.text
        assert User.select().count() == 0


def test_signed_in_page_shows_a_month_of_steps(live_app):
    with freeze_time("2026-11-23 12:00"):  # 24 October to 23 November: 31 days
        page = Browser(live_app).sign_in()
    bars = re.findall(r"<rect [^>]*><title>([^<]+)</title>", page.text)
    assert len(bars) == 31  # a calendar month back from today, as Fitbit's 1m period gives
    assert "steps today" in page.text and "Fitbit member since 14 March 2016" in page.text


def test_without_activity_the_page_has_the_profile_and_asks_for_the_steps(live_app):
    page = Browser(live_app).sign_in(scopes=("profile",))
    assert "Hello, Alex R." in page.text
    assert "Show my steps" in page.text and 'name="panel" value="steps"' in page.text
    assert "<svg" not in page.text


def test_without_profile_the_page_has_the_steps_and_a_note(live_app):
    with freeze_time("2026-11-23 12:00"):
        page = Browser(live_app).sign_in(scopes=("activity",))
    assert page.status_code == 200
    assert f"Hello, {ALEX}" in page.text
    assert "You did not allow access to your profile" in page.text
    assert len(re.findall(r"<rect ", page.text)) == 31


def test_access_revoked_at_fitbit_leads_to_connect_again(tmp_path):
    # Eight-hour tokens, so that nothing is refreshed ahead of time: the app learns of the
    # revocation from the API's 401 invalid_token.
    with (
        running_app(tmp_path, expires_in=28800) as (url, config),
        freeze_time("2026-11-23 12:00") as clock,
    ):
        browser = Browser(url)
        browser.sign_in()
        # The user revokes the app in Fitbit's own settings, not through this app.
        revoked = requests.post(
            url + "/sandbox/oauth2/revoke",
            data={"token": held(User.get()).refresh_token},
            auth=(config.client.client_id, config.client.client_secret),
            timeout=10,
        )
        assert revoked.status_code == 200
        clock.tick(timedelta(minutes=6))  # past the cache, so the app asks Fitbit again
        page = browser.get("/")
    assert page.status_code == 200
    assert "Connect again" in page.text
    assert held(User.get()).refresh_token is None


def test_a_whole_flow_logs_each_step_and_no_secret(tmp_path, caplog, capfd):
    """Sign in, a refresh, a disconnect: every log record and everything the server printed,
    searched for every token, code, verifier and secret that was issued or used."""
    caplog.set_level(logging.DEBUG)
    secrets = []
    with (
        running_app(tmp_path) as (url, config),
        freeze_time("2026-11-23 12:00:00") as clock,
    ):
        secrets.append(config.client.client_secret)
        browser = Browser(url)
        assert "Hello, Alex R." in browser.sign_in_noting_secrets(secrets).text
        secrets += [held(User.get()).access_token, held(User.get()).refresh_token]
        clock.tick(timedelta(minutes=6))  # the 10-minute tokens are due
        assert "steps today" in browser.get("/").text
        secrets += [held(User.get()).access_token, held(User.get()).refresh_token]
        assert "Fitbit has revoked" in browser.submit("/auth/revoke").text

    printed = capfd.readouterr()
    # Everything but the test's own browser (urllib3), which sees the code like any browser.
    records = [r.getMessage() for r in caplog.records if not r.name.startswith("urllib3")]
    logged = "\n".join([*records, printed.out, printed.err])
    for step in ("signed in", "tokens refreshed", "disconnected, access revoked at Fitbit"):
        assert f"Fitbit user {ALEX}: {step}" in logged
    assert "GET /auth/callback?[redacted]" in logged
    assert len(set(secrets)) == 7
    leaked = [secret for secret in secrets if secret in logged]
    assert [line for line in logged.splitlines() if any(s in line for s in leaked)] == []


# --- In Google's dialect ------------------------------------------------------------------

GOOGLE_ALEX = "hu-4f1e9c2a7b"


def test_google_sign_in_greeting_chart_and_one_refresh_an_hour(tmp_path):
    with (
        running_app(tmp_path, expires_in=3599, provider="google") as (url, _),
        freeze_time("2026-11-23 12:00:00") as clock,
    ):
        browser = Browser(url)
        assert "local stand-in for Google Health" in browser.get("/").text
        page = browser.sign_in()
        assert "You are signed in with Google Health." in page.text
        assert "Hello, Alex Rivera" in page.text and "steps today" in page.text
        assert len(re.findall(r"<rect ", page.text)) == 30
        first = User.get()
        assert (first.provider, first.fitbit_id, first.health_user_id) == (
            "google",
            ALEX,
            GOOGLE_ALEX,
        )
        clock.tick(timedelta(minutes=56))  # inside the five-minute leeway of the hour
        assert "steps today" in browser.get("/").text
        second = User.get()
        # A new access token; Google's refresh token is kept, and goes on working.
        assert held(second).access_token != held(first).access_token
        assert held(second).refresh_token == held(first).refresh_token
        clock.tick(timedelta(minutes=56))
        assert "steps today" in browser.get("/").text
        assert held(User.get()).refresh_token == held(first).refresh_token
        assert "Disconnected. Google Health has revoked" in browser.submit("/auth/revoke").text
        assert not User.get().connected


def test_google_consent_without_profile_shows_what_was_allowed_and_notes_the_rest(tmp_path):
    with running_app(tmp_path, provider="google") as (url, _):
        activity = "https://www.googleapis.com/auth/googlehealth.activity_and_fitness.readonly"
        page = Browser(url).sign_in(scopes=[activity])
    assert page.status_code == 200 and f"Hello, {ALEX}" in page.text
    assert "You allowed this app to see your steps and your workouts." in page.text
    assert "You did not allow access to your profile" in page.text
    assert "steps today" in page.text


def test_a_week_later_a_testing_apps_grant_has_died_and_the_user_connects_again(tmp_path):
    with (
        running_app(tmp_path, expires_in=3599, provider="google") as (url, _),
        freeze_time("2026-11-23 12:00:00") as clock,
    ):
        browser = Browser(url)
        browser.sign_in()
        clock.tick(timedelta(days=7, hours=1))
        page = browser.get("/")
        assert "no longer accepts this app" in page.text and "Connect again" in page.text
        assert not User.get().connected
        assert "steps today" in browser.sign_in().text  # a new consent, a new refresh token
        assert User.get().connected


def test_google_sign_in_without_health_data_stores_nothing(tmp_path):
    with running_app(tmp_path, provider="google") as (url, _):
        scopes = ["openid", "https://www.googleapis.com/auth/userinfo.profile"]
        page = Browser(url).sign_in(scopes=scopes)
    assert page.status_code == 403 and "No health data allowed" in page.text
    assert User.select().count() == 0


def test_moving_from_fitbit_to_google_health_keeps_one_row_per_person(tmp_path):
    """Sign in with PROVIDER=fitbit, restart with PROVIDER=google, sign in again."""
    with running_app(tmp_path) as (url, _):
        browser = Browser(url)
        assert "Hello, Alex R." in browser.sign_in().text
        Browser(url).sign_in(user=SAM)
        fitbit_token = held(User.by_fitbit_id(ALEX)).refresh_token
    with running_app(tmp_path, provider="google") as (url, _):
        browser.base_url = url  # the same browser, and its cookie, after the restart
        page = browser.get("/")
        # Still signed in, and nudged, not forced, to connect again.
        assert "Hello, Alex R." in page.text
        assert "You connected through the legacy Fitbit Web API" in page.text
        assert 'href="/auth">Connect again' in page.text
        assert "Hello, Alex Rivera" in browser.sign_in(user=GOOGLE_ALEX).text
        users = browser.get("/users").text
    assert User.select().count() == 2  # Alex and Sam, not a third row for Alex on Google
    alex = User.by_fitbit_id(ALEX)
    assert (alex.provider, alex.health_user_id) == ("google", GOOGLE_ALEX)
    assert held(alex).refresh_token != fitbit_token  # the Fitbit tokens are dropped
    rows = {
        re.search(r"<td[^>]*>([^<]+)</td>", row).group(1): re.findall(r"<td[^>]*>([^<]*)", row)[1]
        for row in re.findall(r"<tr>\s*<td.*?</tr>", users, re.S)
    }
    assert rows == {"Alex Rivera": "Google Health", "Sam K.": "Fitbit"}  # who is with whom


# --- Webhooks: a walk at the stand-in, and the page that follows -----------------------


def steps_today(page):
    return int(
        re.search(r"<strong>([0-9,]+)</strong> steps today", page.text).group(1).replace(",", "")
    )


def api_calls_at(stand_in_file):
    """Every API call the stand-in has counted, from its own file."""
    connection = sqlite3.connect(stand_in_file)
    try:
        return connection.execute("SELECT coalesce(sum(count), 0) FROM calls").fetchone()[0]
    finally:
        connection.close()


def walk_at(browser, mount, person, steps):
    """The stand-in's walk page, as a reader uses it; what it says was sent."""
    page = browser.http.post(
        f"{browser.base_url}{mount}/walk", data={"person": person, "steps": str(steps)}, timeout=30
    )
    assert page.status_code == 200
    return page.text


def test_a_walk_at_the_fitbit_stand_in_reaches_the_page_with_a_call_per_panel_of_it(tmp_path):
    """Fitbit's `activities` collection is the steps, the workouts and the heart rate: a
    walk makes each granted panel of it stale, the steps and the workouts, once."""
    # A day of cache: without the notification, the page would show the old count all day.
    with running_app(tmp_path, FITBIT_CACHE_SECONDS="86400") as (url, _):
        browser = Browser(url)
        before = steps_today(browser.sign_in(user=ALEX))
        calls = api_calls_at(tmp_path / "stand-in.db")
        assert steps_today(browser.get("/")) == before  # unchanged: from the cache
        assert api_calls_at(tmp_path / "stand-in.db") == calls
        said = walk_at(browser, "/sandbox", ALEX, 2500)
        # The handshake passed, and the app answered the signed notification at once.
        assert "Notifications sent: 1, answered 2xx at once: 1" in html.unescape(said)
        assert steps_today(browser.get("/")) >= before + 2500
        assert api_calls_at(tmp_path / "stand-in.db") == calls + 2
        browser.get("/")
        assert api_calls_at(tmp_path / "stand-in.db") == calls + 2
        assert "A notification from Fitbit" in browser.get("/trace").text


def test_a_walk_at_the_google_stand_in_reaches_the_page_with_one_api_call(tmp_path):
    with running_app(tmp_path, provider="google", FITBIT_CACHE_SECONDS="86400") as (url, _):
        browser = Browser(url)
        before = steps_today(browser.sign_in(user=GOOGLE_ALEX))
        calls = api_calls_at(tmp_path / "stand-in-google.db")
        said = walk_at(browser, "/sandbox/google", GOOGLE_ALEX, 3000)
        assert "Notifications sent: 1, answered 2xx at once: 1" in html.unescape(said)
        assert steps_today(browser.get("/")) >= before + 3000
        assert api_calls_at(tmp_path / "stand-in-google.db") == calls + 1
        browser.get("/")
        assert api_calls_at(tmp_path / "stand-in-google.db") == calls + 1
        trace = browser.get("/trace").text
        assert "A notification from Google Health" in trace and "Bearer ***" in trace


def test_disconnect_deletes_the_subscriptions_at_the_fitbit_stand_in(tmp_path):
    with running_app(tmp_path) as (url, _):
        browser = Browser(url)
        browser.sign_in(user=ALEX)
        stand_in = FitbitStandIn(database=str(tmp_path / "stand-in.db"))
        collections = {s.collection for s in stand_in.store.subscriptions.of(ALEX)}
        assert collections == {"activities", "userRevokedAccess"}
        browser.submit("/auth/revoke")
        assert stand_in.store.subscriptions.of(ALEX) == []


def test_python_m_sandbox_walk_notifies_the_running_app(tmp_path, monkeypatch, capsys):
    """The command, beside the running app, on the stand-in's file: as in docs/webhooks.md."""
    from sandbox.__main__ import main as sandbox_main

    with running_app(tmp_path, FITBIT_CACHE_SECONDS="86400") as (url, _):
        browser = Browser(url)
        before = steps_today(browser.sign_in(user=ALEX))
        monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
        with pytest.raises(SystemExit) as ended:
            sandbox_main(["walk", "alex", "1200", "--provider", "fitbit"])
        assert ended.value.code == 0
        assert f"{url}/webhooks/fitbit: 204" in capsys.readouterr().out
        assert steps_today(browser.get("/")) >= before + 1200


# --- Step 10: one kind of data more, through the stand-ins' consent pages --------------------


def ask_for_more(browser, panel, decision="allow", ticked=True, user=None):
    """Press a panel's button, and answer the consent page that comes as `user` (the first
    person offered unless given): Allow with everything offered (or with the new scope
    unticked), or Deny."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.page.text).group(1)
    consent = browser.http.post(
        browser.base_url + "/auth/more", data={"csrf_token": token, "panel": panel}, timeout=10
    )
    assert "would like to access your data" in consent.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
    offered = re.findall(r'name="scope" value="([^"]+)"', consent.text)
    user = user or re.search(r'name="user_id" value="([^"]+)" checked', consent.text).group(1)
    scopes = offered if ticked else offered[:-1]
    form = {"request_id": request_id, "user_id": user, "decision": decision, "scope": scopes}
    browser.page = browser.http.post(consent.url.split("?")[0], data=form, timeout=10)
    return offered


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_sleep_and_heart_rate_each_asked_for_when_wanted_then_disconnect_gives_all_back(
    tmp_path, provider
):
    with running_app(tmp_path, provider=provider) as (url, _):
        browser = Browser(url)
        first = browser.sign_in()
        assert "Show my sleep" in first.text and "Show my heart rate" in first.text
        offered = ask_for_more(browser, "sleep")
        if provider == "fitbit":
            assert offered == ["activity", "profile", "sleep"]  # every scope held, one more
        else:
            assert [name.rsplit(".", 2)[-2] for name in offered] == ["sleep"]  # that one alone
        assert "now lets this app see your sleep" in browser.page.text
        assert "asleep" in browser.page.text and "Show my sleep" not in browser.page.text
        ask_for_more(browser, "heart_rate")
        page = browser.page.text
        assert "at rest today" in page or "No resting rate yet today" in page
        user = User.get()
        assert User.select().count() == 1 and len(user.scope.split()) >= 4
        access = held(user).access_token
        assert "revoked" in browser.submit("/auth/revoke").text
        mount = "/sandbox/google" if provider == "google" else "/sandbox"
        api = "/v1/userinfo" if provider == "google" else "/1/user/-/profile.json"
        dead = requests.get(
            url + mount + api, headers={"Authorization": f"Bearer {access}"}, timeout=10
        )
        assert dead.status_code == 401  # the round's access token is gone with the rest


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_the_new_scope_unticked_or_deny_leaves_the_page_as_it_was(tmp_path, provider):
    with running_app(tmp_path, provider=provider) as (url, _):
        browser = Browser(url)
        browser.sign_in()
        before = User.get()
        ask_for_more(browser, "sleep", ticked=False)
        # Both send back what is held (Google, the `openid` the round asks for again).
        assert "You did not allow access to your sleep" in browser.page.text
        browser.get("/")
        ask_for_more(browser, "heart_rate", decision="deny")
        assert "You chose not to show your heart rate" in browser.page.text
        assert "steps today" in browser.page.text
        after = User.get()
        assert (after.scope, held(after).refresh_token) == (
            before.scope,
            held(before).refresh_token,
        )
