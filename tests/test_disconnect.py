"""disconnect.py: Disconnect revokes at the provider and forgets the tokens here, whatever
the provider answers."""

import pytest
import requests
from conftest import PROFILE_URL, REFRESH_TOKEN, csrf_token, held, page, profile_body, sign_in
from responses import matchers

import fitbit_legacy
from models import User


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
