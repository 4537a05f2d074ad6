"""GET /trace: the exchanges of this browser's sign-in, step by step, masked."""

import logging
import re
from datetime import timedelta

from conftest import CLIENT_SECRET, SECRETS, held, running_app, sign_in
from freezegun import freeze_time
from test_end_to_end import Browser
from werkzeug.test import Client

import fitbit_legacy
import token_store
import tracing
from models import BrowserSession, User


def steps(text):
    return re.findall(r"<h2>([^<]+)</h2>", text)


def test_the_trace_replays_a_sign_in_and_a_refresh_with_every_secret_masked(tmp_path):
    seen = []
    with running_app(tmp_path) as (url, config), freeze_time("2026-11-23 12:00:00") as clock:
        seen.append(config.client.client_secret)
        browser = Browser(url)
        home = browser.sign_in_noting_secrets(seen).text
        # The page links to the trace, once.
        assert home.count('href="/trace"') == 1
        assert '<a href="/trace">See what just happened</a>' in home
        first = User.get()
        seen += [held(first).access_token, held(first).refresh_token]
        clock.tick(timedelta(minutes=6))  # the stand-in's 10-minute tokens are due
        browser.get("/")
        second = User.get()
        seen += [held(second).access_token, held(second).refresh_token]
        trace = browser.get("/trace").text

    assert steps(trace) == [
        "The redirect to the consent page",
        "The callback",
        "The token request: the code for tokens",
        "An API call: /sandbox/1/user/-/profile.json",
        # Webhooks: Fitbit is asked to notify the steps, and a revocation.
        "A subscription: /sandbox/1/user/-/activities/apiSubscriptions/1-activities.json",
        "A subscription: /sandbox/1/user/-/userRevokedAccess/apiSubscriptions/"
        "1-userRevokedAccess.json",
        "An API call: /sandbox/1/user/-/activities/steps/date/today/1m.json",
        "An API call: /sandbox/1/user/-/activities/list.json",
        "A refresh: the refresh token for a new pair",
        "An API call: /sandbox/1/user/-/profile.json",
        "An API call: /sandbox/1/user/-/activities/steps/date/today/1m.json",
        "An API call: /sandbox/1/user/-/activities/list.json",
    ]
    # The activity log's paging explained: its parameters, and where the next page is.
    assert "Always 0: Fitbit pages only by pagination.next" in trace
    assert "pagination.next" in trace and "(empty: the last page)" in trace
    # Each parameter of the authorization request, with why it is there.
    assert "Ties the answer to this browser" in trace and "The SHA-256 of a verifier" in trace
    # PKCE told truthfully: the verifier stays here until the token request, which sends it.
    assert "stays on this server until the token request" in trace
    assert "(43 characters, sent for the first time)" in trace
    assert "The provider hashes it and compares the hash with the challenge" in trace
    assert "Basic ***" in trace and "Bearer ***" in trace
    assert "HTTP Basic client authentication" in trace and "the client id again" in trace
    assert "Fitbit-Rate-Limit-Remaining" in trace and "Seconds the access token lives" in trace
    assert "Seconds until the budget refills" in trace
    # A month of steps is folded after its first lines.
    assert "<summary>The rest of the answer</summary>" in trace
    # The refresh shows the old refresh token going and the new one coming, masked.
    assert (
        f"{held(first).refresh_token[:4]}…" in trace
        and f"{held(second).refresh_token[:4]}…" in trace
    )
    assert len(set(seen)) == 7
    assert [secret for secret in seen if secret in trace] == []


def test_with_sentinel_values_no_token_code_or_secret_reaches_the_trace(browser, fitbit):
    sign_in(browser, fitbit)
    trace = browser.get("/trace").get_data(as_text=True)
    assert "The token request: the code for tokens" in trace
    assert "acce…" in trace and "refr…" in trace and "auth…" in trace
    assert [secret for secret in SECRETS if secret in trace] == []
    assert CLIENT_SECRET not in trace


def test_another_browser_sees_none_of_it(app, browser, fitbit):
    sign_in(browser, fitbit)
    other = Client(app).get("/trace").get_data(as_text=True)
    assert steps(other) == []
    assert "This browser has no sign-in to show yet" in other


def test_a_disconnect_is_in_the_trace_too(browser, fitbit):

    sign_in(browser, fitbit)
    fitbit.post(fitbit_legacy.REVOKE_URL, json={})
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/").get_data(True))
    browser.post("/auth/revoke", data={"csrf_token": token.group(1)})
    assert steps(browser.get("/trace").get_data(as_text=True))[-1] == "The revoke"


def test_a_401_and_its_retry_and_a_429_are_in_the_trace(browser, fitbit):
    from conftest import PROFILE_URL, fitbit_error, profile_body, token_body

    with freeze_time("2026-11-23 12:00:00") as clock:
        sign_in(browser, fitbit)
        clock.tick(timedelta(minutes=6))  # past the cache: the page asks Fitbit again
        fitbit.replace("GET", PROFILE_URL, status=401, json=fitbit_error("expired_token"))
        fitbit.add("GET", PROFILE_URL, json=profile_body())
        fitbit.replace(
            "POST", fitbit_legacy.TOKEN_URL, json=token_body(access_token="a2", refresh_token="r2")
        )
        fitbit.replace(
            "GET",
            fitbit_legacy.API_URL + "/1/user/-/activities/steps/date/today/1m.json",
            status=429,
            json=fitbit_error("system"),
        )
        browser.get("/")
        trace = browser.get("/trace").get_data(as_text=True)
    later = steps(trace)[4:]  # after the sign-in: its exchange and its profile call
    assert later == [
        "An API call: /1/user/-/profile.json",
        "A refresh: the refresh token for a new pair",
        "An API call: /1/user/-/profile.json",
        "An API call: /1/user/-/activities/steps/date/today/1m.json",
    ]
    answers = re.findall(r"Answer: <strong>(\d+)</strong>", trace)[
        2:
    ]  # after the sign-in's token request and profile call
    assert answers == ["401", "200", "200", "429"]


def test_a_google_sign_in_and_refresh_are_traced_with_every_secret_masked(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    seen = []
    with (
        running_app(tmp_path, expires_in=3599, provider="google") as (url, config),
        freeze_time("2026-11-23 12:00:00") as clock,
    ):
        seen.append(config.client.client_secret)
        browser = Browser(url)
        home = browser.sign_in_noting_secrets(seen)
        assert "Hello, Alex Rivera" in home.text
        first = User.get()
        seen.append(held(first).access_token)
        seen.append(held(first).refresh_token)
        clock.tick(timedelta(minutes=56))
        browser.get("/")
        seen.append(held(User.get()).access_token)
        trace = browser.get("/trace").text
        cookies = str(browser.http.cookies.get_dict())
    root = "/sandbox/google"
    assert steps(trace) == [
        "The redirect to the consent page",
        "The callback",
        "The token request: the code for tokens",
        "The ID token, checked",
        f"An API call: {root}/v4/users/me/identity",
        f"An API call: {root}/v4/users/me/settings",  # the time zone the days are cut by
        f"An API call: {root}/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp",
        f"An API call: {root}/v4/users/me/dataTypes/exercise/dataPoints",
        "A refresh: the refresh token for a new pair",
        f"An API call: {root}/v1/userinfo",
        f"An API call: {root}/v4/users/me/settings",
        f"An API call: {root}/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp",
        f"An API call: {root}/v4/users/me/dataTypes/exercise/dataPoints",
    ]
    # The list's filter and page size explained.
    assert "How many points to a page, at most" in trace and "AIP-160" in trace
    assert "offline asks for a refresh token" in trace and "Google&#39;s are kept and used" in trace
    # The roll-up's JSON body is shown as JSON, labelled so, not as a form in Python's words.
    assert '<p class="caption">JSON body</p><pre>{' in trace
    assert "&#34;windowSizeDays&#34;: 1" in trace and "{&#39;start&#39;" not in trace
    assert "RFC 9207" in trace  # Google's callback carries iss, and the trace says why
    # The ID token decoded: its header and every claim explained, the key that checked it,
    # and its signature in part only.
    assert "The ID token&#39;s header" in trace and "Only RS256 is taken" in trace
    for claim in ("iss", "azp", "aud", "sub", "iat", "exp", "at_hash", "nonce", "name"):
        assert f'<th scope="row">{claim}</th>' in trace
    assert "2026-11-23 12:00:00 UTC" in trace  # iat, in words beside the number
    assert "Whom it is for: it must hold this app&#39;s client id" in trace
    signature = re.search(r"Signature (\S+)… \((\d+) characters\): RS256", trace)
    assert len(signature.group(1)) == 8 and int(signature.group(2)) == 342  # RSA 2048
    assert f"published at {url}{root}/oauth2/v3/certs" in trace
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("urllib3"))
    assert len(set(seen)) == 6
    for where in (trace, home.text, cookies, logged):
        assert [secret for secret in seen if secret in where] == []


def test_every_parameter_a_callback_brings_is_explained_and_the_code_masked():
    params = {
        "code": "4/0AanRRrt-the-whole-code",
        "state": "s" * 43,
        "scope": "openid profile",
        "authuser": "0",
        "prompt": "consent",
        "iss": "https://accounts.google.com",
    }
    _, shown = tracing.callback_step(params)
    rows = {name: (value, why) for name, value, why in shown["parameters"]}
    assert sorted(rows) == sorted(params)
    assert [name for name, (_, why) in rows.items() if not why] == []
    assert rows["code"][0] == "4/0A…"
    assert "RFC 9207" in rows["iss"][1]


def test_a_trace_kept_before_its_rows_were_explained_still_shows(browser):
    """Traces stored by an earlier release hold {name: value}, not rows with a reason."""
    browser.get("/auth")
    old = {
        "request": {
            "method": "POST",
            "url": "https://api.fitbit.com/oauth2/token",
            "headers": {"Authorization": "Basic ***"},
            "form": {"grant_type": "authorization_code", "code": "abcd…"},
        },
        "response": {"status": 200, "headers": {"Fitbit-Rate-Limit-Remaining": "149"}},
    }
    token_store.keep_step(BrowserSession.get().trace, "An old step", old)
    text = browser.get("/trace").get_data(as_text=True)
    assert "An old step" in text and "<code>Basic ***</code>" in text
    assert '<th scope="row">grant_type</th><td><code>authorization_code</code>' in text
    assert "<code>149</code>" in text


def test_an_authorization_without_a_scheme_is_masked_whole():
    """A webhook's secret may be a bare value: nothing of it reaches the trace."""
    import tracing

    shown = tracing.masked_headers({"Authorization": "bare-secret-SENTINEL"})
    assert shown == [("Authorization", "***", "")]
    assert tracing.masked_headers({"Authorization": "Bearer abc"})[0][1] == "Bearer ***"
