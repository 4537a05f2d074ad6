"""sessions.py: the cookie, the session it names, CSRF tokens, flashes, and the cap on
sign-ins in flight from one address."""

import dataclasses
import re
import threading
from datetime import timedelta

import pytest
from conftest import (
    PROFILE_URL,
    REFRESH_TOKEN,
    csrf_token,
    held,
    page,
    profile_body,
    session_cookie,
    sign_in,
)
from freezegun import freeze_time
from werkzeug.test import Client

import fitbit_legacy
import models
import sessions
from fitbit_oauth_app import create_app
from models import BrowserSession, PendingSignIn, User


def test_flash_message_is_shown_once(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    assert "You are signed in with Fitbit." in page(browser.get("/"))
    assert "You are signed in with Fitbit." not in page(browser.get("/"))


def test_the_session_is_found_among_the_cookies_of_other_apps_on_the_same_host(browser, fitbit):
    """localhost is shared by whatever a developer runs on it: their cookies come too, before
    and after this app's, and one with a name that starts the same is not this app's."""
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    raw = browser.get_cookie("session").value
    other_browser = Client(browser.application, use_cookies=False)  # sends the ones below
    header = f'theme=dark; sessionid=other-app; session={raw}; csrftoken="a b"'
    assert "Hello, Alex" in page(other_browser.get("/", headers={"Cookie": header}))
    for not_ours in (f"sessionid={raw}", f"session_={raw}", "session=", f"x{raw}=1"):
        answer = other_browser.get("/", headers={"Cookie": not_ours})
        assert answer.status_code == 200 and "Hello, Alex" not in page(answer)


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


def test_a_browser_on_127_0_0_1_is_sent_to_localhost_before_signing_in(app):
    # The redirect URI says localhost: a cookie set for 127.0.0.1 would not come back.
    response = Client(app).get("/auth", base_url="http://127.0.0.1:4000")
    assert response.status_code == 302
    assert response.headers["Location"] == "http://localhost:4000/auth"
    assert PendingSignIn.select().count() == 0
    # Any other host name is left alone: no redirect can be steered by the Host header.
    elsewhere = Client(app).get("/auth", base_url="http://evil.example")
    assert elsewhere.headers["Location"].startswith(fitbit_legacy.AUTHORIZE_URL)


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


@pytest.mark.parametrize("days, signed_in", [(13, True), (14, False)])
def test_sessions_expire_on_the_server_whatever_the_browser_keeps(browser, fitbit, days, signed_in):
    with freeze_time("2026-11-01 12:00:00") as clock:
        sign_in(browser, fitbit)
        cookie = session_cookie(browser)
        clock.tick(timedelta(days=days, seconds=1))
        # A browser that ignores Max-Age, or a stolen cookie, sends the id all the same.
        browser.set_cookie("session", cookie)
        assert ("Sign out" in page(browser.get("/"))) is signed_in


@pytest.mark.parametrize("path", ["/auth/revoke", "/logout"])
@pytest.mark.parametrize("token", [None, "", "wrong", "é"])
def test_posts_without_the_csrf_token_are_refused_and_change_nothing(browser, fitbit, path, token):
    sign_in(browser, fitbit)
    cookie = session_cookie(browser)
    data = {} if token is None else {"csrf_token": token}
    response = browser.post(path, data=data)
    assert response.status_code == 403
    assert held(User.get()).refresh_token == REFRESH_TOKEN
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
    assert held(User.get()).refresh_token == REFRESH_TOKEN  # signing out is not disconnecting


def test_the_cap_holds_exactly_when_many_sign_ins_start_at_once(app):
    """Real threads, all released at the same moment: counting and adding are one step."""
    cap, starting = sessions.MAX_SIGN_INS_PER_ADDRESS, 3 * sessions.MAX_SIGN_INS_PER_ADDRESS
    for round_ in range(3):
        address = f"192.0.2.{10 + round_}"
        barrier, statuses = threading.Barrier(starting), []

        def start(address=address, barrier=barrier, statuses=statuses):
            browser = Client(app)
            barrier.wait()
            statuses.append(start_without_cookies_in(browser, address).status_code)

        threads = [threading.Thread(target=start) for _ in range(starting)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [302] * cap + [429] * (starting - cap)
        # Refused starts leave nothing behind: no session, no pending sign-in.
        assert PendingSignIn.select().count() == cap * (round_ + 1)
        assert BrowserSession.select().count() == cap * (round_ + 1)


def start_without_cookies_in(browser, address):
    return browser.get("/auth", environ_base={"REMOTE_ADDR": address})


def test_an_hour_after_abandoned_sign_ins_nothing_of_them_is_left(app):
    """Twenty sign-ins started and never finished, each with its session, its pending
    sign-in and the first step of its trace: an hour later, one more start clears them."""
    cap = sessions.MAX_SIGN_INS_PER_ADDRESS
    with freeze_time("2026-11-23 12:00:00") as clock:
        for _ in range(cap):
            assert start_without_cookies(app).status_code == 302
        counts = (BrowserSession, PendingSignIn, models.TraceEntry)
        assert [model.select().count() for model in counts] == [cap, cap, cap]
        clock.tick(models.ANONYMOUS_SESSION_LIFETIME + timedelta(minutes=1))
        assert start_without_cookies(app, address="198.51.100.1").status_code == 302
        # Only the sign-in just started is left: its session, its pending sign-in, its trace.
        assert [model.select().count() for model in counts] == [1, 1, 1]


def test_starts_refused_for_their_address_still_clear_a_storms_leftovers(app):
    """A storm from many addresses leaves sessions, sign-ins and traces behind; an hour on,
    one address starts until it is refused. Its refused starts clear the rest: the
    clearing is committed on its own, not rolled back with the 429."""
    cap, batch = sessions.MAX_SIGN_INS_PER_ADDRESS, sessions.PRUNE_BATCH
    storm = (cap + 3) * batch  # more than the accepted starts alone can clear
    kinds = (BrowserSession, PendingSignIn, models.TraceEntry)
    with freeze_time("2026-11-23 12:00:00") as clock:
        for n in range(storm):
            start_without_cookies(app, address=f"2001:db8::{n:x}")
        clock.tick(models.ANONYMOUS_SESSION_LIFETIME + timedelta(minutes=1))
        for _ in range(cap):
            assert start_without_cookies(app).status_code == 302
        left = [model.select().count() - cap for model in kinds]
        assert left == [3 * batch] * 3  # each accepted start cleared a batch of each
        refused = [start_without_cookies(app).status_code for _ in range(3)]
        assert refused == [429] * 3
        # Only the address's own sign-ins in flight are left.
        assert [model.select().count() for model in kinds] == [cap, cap, cap]
