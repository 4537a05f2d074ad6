"""disconnect.py: Disconnect revokes at the provider and forgets the tokens here, whatever
the provider answers."""

import html
import re
from datetime import timedelta

import pytest
import requests
from conftest import (
    PROFILE_URL,
    REFRESH_TOKEN,
    beside_a_stand_in,
    csrf_token,
    held,
    live_tokens,
    page,
    profile_body,
    sign_in,
)
from freezegun import freeze_time
from responses import matchers
from test_end_to_end import Browser

import fitbit_legacy
from models import User, db
from providers import PROVIDERS


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
    assert held(User.get()).refresh_token is None and held(User.get()).access_token is None
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
    assert held(User.get()).refresh_token is None
    assert "https://www.fitbit.com/settings/applications" in page(browser.get("/"))


def test_after_disconnect_the_page_says_only_what_is_true(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.get(PROFILE_URL, json=profile_body())
    fitbit.post(fitbit_legacy.REVOKE_URL, json={})
    browser.post("/auth/revoke", data={"csrf_token": csrf_token(browser)})
    text = page(browser.get("/"))
    assert "This app no longer has access to your Fitbit account." in text
    assert "keeps its access" not in text  # Sign out no longer claims an access that is gone
    assert "<p>This browser forgets you.</p>" in text
    assert "Disconnect</button>" not in text


def test_tokens_from_google_health_in_fitbits_dialect_are_named_as_google_healths(browser, fitbit):
    """Alex connected through Google Health; the app now speaks Fitbit's legacy dialect."""
    sign_in(browser, fitbit)
    User.update(provider="google", health_user_id="hu-1").execute()
    before = len(fitbit.calls)
    text = page(browser.get("/"))
    assert "The app keeps its access to your data at Google Health." in text
    assert "Your Google Health tokens here are deleted." in text
    assert "Fitbit revokes" not in text
    browser.post("/auth/revoke", data={"csrf_token": csrf_token(browser)})
    after = page(browser.get("/"))
    assert "You can revoke access at Google Health" in after
    assert "no longer has access to your Google Health account" in after
    assert "your Fitbit account" not in after
    assert len(fitbit.calls) == before  # Google's tokens were sent nowhere


# --- Against a stand-in: what is left live at the provider -----------------------------------

PEOPLE = {"fitbit": "7QW2XR", "google": "hu-4f1e9c2a7b"}


def delete_my_data(browser):
    confirm = browser.get("/my-data/delete")
    token = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text).group(1)
    return browser.http.post(browser.base_url + "/my-data/delete", data={"csrf_token": token})


@pytest.mark.parametrize("how", ["disconnect", "delete"])
@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_with_the_access_token_run_out_nothing_of_the_grant_is_left_live(tmp_path, provider, how):
    """With webhooks on, Disconnect and Delete first delete Fitbit's subscriptions, which
    refreshes an access token that has run out: what is revoked must be the pair that
    refresh stored, not the refresh token it spent."""
    person = PEOPLE[provider]
    with (
        freeze_time("2026-12-07 12:00:00") as clock,
        beside_a_stand_in(tmp_path, provider, expires_in=600, webhooks=True) as (url, stand_in),
    ):
        browser = Browser(url)
        assert "Hello" in browser.sign_in(user=person).text
        assert live_tokens(stand_in, person)
        clock.tick(timedelta(minutes=11))  # the access token has run out, here and there
        refreshes = token_requests(stand_in)
        if how == "disconnect":
            page = browser.submit("/auth/revoke")
        else:
            page = delete_my_data(browser)
        assert page.status_code == 200
        assert "revoked this app's access" in html.unescape(page.text)
        assert live_tokens(stand_in, person) == []
        if provider == "fitbit":
            assert token_requests(stand_in) == refreshes + 1  # the unsubscribe refreshed
            assert stand_in.store.subscriptions.of(person) == []


def token_requests(stand_in):
    """How many times the app has asked the stand-in for tokens: a code, or a refresh."""
    return sum(1 for method, path in stand_in.asked if method == "POST" and "token" in path)


@pytest.mark.parametrize("how", ["disconnect", "delete"])
@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_tokens_that_no_longer_open_are_disconnected_here_and_say_where_to_revoke(
    tmp_path, provider, how
):
    with beside_a_stand_in(tmp_path, provider) as (url, stand_in):
        browser = Browser(url)
        browser.sign_in(user=PEOPLE[provider])
        with db.connection_context():
            sealed = User.get().refresh_token
            changed = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
            User.update(refresh_token=changed).execute()
        if how == "disconnect":
            page = browser.submit("/auth/revoke")
        else:
            page = delete_my_data(browser)
        assert page.status_code == 200, page.text
        site = PROVIDERS[provider].SITE_FOR_REVOKING
        assert site in page.text
        with db.connection_context():
            left = User.get_or_none()
            assert left is None if how == "delete" else not left.connected
