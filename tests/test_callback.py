"""callback.py: the way back from the provider, treated as hostile. A forged, replayed or
late callback never reaches the token endpoint, and bad input is a 400, never a crash."""

import pytest
from conftest import (
    AUTH_CODE,
    PROFILE_URL,
    STEPS_URL,
    callback,
    fitbit_error,
    page,
    profile_body,
    start_sign_in,
    steps_body,
    token_body,
    token_calls,
)
from freezegun import freeze_time
from werkzeug.test import Client

import fitbit_legacy
from models import PendingSignIn, User


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


def test_replayed_callback_is_refused(app, browser, fitbit):
    query = start_sign_in(browser)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    fitbit.get(PROFILE_URL, json=profile_body())
    assert callback(browser, query["state"]).status_code == 302
    # Another browser, signed out, gets a 400.
    assert callback(Client(app), query["state"]).status_code == 400
    assert len(token_calls(fitbit)) == 1


@pytest.mark.parametrize("again", ["reload", "allow again"])
def test_a_signed_in_browser_back_at_the_callback_goes_home_and_exchanges_nothing(
    browser, fitbit, again
):
    query = start_sign_in(browser)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    fitbit.get(PROFILE_URL, json=profile_body())
    assert callback(browser, query["state"]).status_code == 302
    # A reload of the callback URL, or Back to the consent page and Allow: the stand-in
    # would send a new code, with the old state.
    code = AUTH_CODE if again == "reload" else "a-second-code"
    response = callback(browser, query["state"], code=code)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert response.headers["Referrer-Policy"] == "no-referrer"  # the code leaves no trace
    fitbit.get(STEPS_URL, json=steps_body())
    home = page(browser.get("/"))
    assert "You are already signed in with Fitbit" in home and "Hello, Alex" in home
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


def test_only_the_latest_sign_in_of_a_browser_counts(browser, fitbit):
    first = start_sign_in(browser)
    start_sign_in(browser)
    response = callback(browser, first["state"])
    assert response.status_code == 400
    assert len(fitbit.calls) == 0


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


def test_no_next_parameter_can_send_the_user_elsewhere(browser, fitbit):
    for target in ("//evil.example", "/\\evil.example", "https://evil.example"):
        browser.get("/auth", query_string={"next": target})
        state = PendingSignIn.get().state
        fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
        fitbit.get(PROFILE_URL, json=profile_body())
        response = callback(browser, state, next=target)
        assert response.headers["Location"] == "/"


@pytest.mark.parametrize("iss", ["https://www.fitbit.com", "https://attacker.example", ""])
def test_a_callback_naming_an_issuer_is_refused_since_fitbit_names_none(browser, fitbit, iss):
    """RFC 9207: Fitbit sends no `iss`, so one that comes is another server's answer."""
    query = start_sign_in(browser)
    response = callback(browser, query["state"], iss=iss)
    assert response.status_code == 400
    assert "so it was refused" in page(response)
    assert len(fitbit.calls) == 0 and User.select().count() == 0
    # The sign-in is used up: the same answer cannot be tried again with another iss.
    assert callback(browser, query["state"]).status_code == 400


def test_tokens_revoked_before_their_first_use_cancel_the_sign_in(browser, fitbit):
    """Somebody redeemed the same code too: Fitbit revoked every token issued from it
    (RFC 6749 4.1.2), so the profile call is refused. That is no failure of Fitbit's (no
    502): the sign-in is cancelled, nothing is stored, and the user is asked to sign in
    again."""
    query = start_sign_in(browser)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    fitbit.get(PROFILE_URL, status=401, json=fitbit_error("invalid_token"))
    response = callback(browser, query["state"])
    assert response.status_code == 400
    assert "Sign-in cancelled" in page(response) and "Please sign in again" in page(response)
    assert User.select().count() == 0
    assert [call.request.url for call in fitbit.calls] == [fitbit_legacy.TOKEN_URL, PROFILE_URL]
