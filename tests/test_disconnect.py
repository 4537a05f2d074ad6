"""disconnect.py: Disconnect revokes at the provider and forgets the tokens here, whatever
the provider answers."""

import pytest
import requests
from conftest import (
    PROFILE_URL,
    REFRESH_TOKEN,
    csrf_token,
    page,
    profile_body,
    sign_in,
)
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
