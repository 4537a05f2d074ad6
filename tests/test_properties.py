"""Generated input at every route and at the token-response parser (hypothesis).

Two properties hold whatever arrives: no answer is a 5xx, and no token request is ever sent
unless the callback carries the state of this very browser's pending sign-in.
"""

import itertools
import json
import logging
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote

import pytest
import requests
import responses
from conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, token_body
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import HTTPException
from werkzeug.test import Client

import fitbit_legacy
import google_health
import oauth
import sandbox
from fitbit_oauth_app import create_app
from settings import Config, config_from_env

ROUTES = [
    ("GET", "/"),
    ("GET", "/auth"),
    ("GET", "/auth/callback"),
    ("GET", "/users"),
    ("GET", "/trace"),
    ("POST", "/auth/revoke"),
    ("POST", "/logout"),
    ("GET", "/static/style.css"),
    ("GET", "/sandbox/oauth2/authorize"),
    ("POST", "/sandbox/oauth2/authorize"),
    ("POST", "/sandbox/oauth2/token"),
    ("POST", "/sandbox/oauth2/revoke"),
    ("GET", "/sandbox/1/user/-/profile.json"),
    ("GET", "/sandbox/1/user/-/activities/steps/date/today/1m.json"),
]
addresses = itertools.count(1)
# Stands in for the browser's real state in generated input, replaced before sending.
REAL_STATE = "{state}"

# Text as an attacker would send it: printable, odd, non-ASCII, and %-escapes good or bad.
pieces = st.sampled_from(list("abcXYZ019-._~%&=+;?/\\ \"'<>é€\x00\x7f") + ["%FF", "%C3%A9"])
raw = st.lists(pieces, max_size=40).map("".join)
names = st.sampled_from(["code", "state", "error", "error_description", "page", "csrf_token"])
values = st.one_of(raw, st.just(REAL_STATE), st.text(max_size=600))
pairs = st.lists(st.tuples(st.one_of(names, raw), values), max_size=6)


def encode(pairs, state):
    def part(text):
        return text.replace(REAL_STATE, state)

    return "&".join(f"{quote(part(k), safe='%')}={quote(part(v), safe='%')}" for k, v in pairs)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """One app in sandbox mode for all examples: the stand-in is mounted, and the client
    points at Fitbit's real URLs, which `responses` answers."""
    client = oauth.Client(fitbit_legacy, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI)
    database = tmp_path_factory.mktemp("properties") / "p.db"
    return create_app(
        Config(client, f"sqlite:///{database}", sandbox=True, sandbox_database=":memory:")
    )


def fake_fitbit():
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.post(fitbit_legacy.TOKEN_URL, json=token_body())
    mock.get(fitbit_legacy.API_URL + "/1/user/-/profile.json", json={"user": {"displayName": "A"}})
    mock.post(fitbit_legacy.REVOKE_URL, json={})
    return mock


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def send(app, method, path, query, form, cookie, with_own_cookie):
    """From a browser that has started a sign-in (or from another one, which has not), send
    one generated request. Returns the answer and the token requests it caused."""
    # Each call from an address of its own (IPv6's documentation prefix), so that the cap on
    # sign-ins in flight from one address does not turn them all into 429s.
    address = {"REMOTE_ADDR": f"2001:db8::{next(addresses):x}"}
    browser = Client(app)
    started = browser.get("/auth", environ_base=address)
    state = parse_qs(started.headers["Location"].split("?", 1)[1])["state"][0]
    if not with_own_cookie:
        browser = Client(app)
    if cookie is not None:
        browser.set_cookie("session", cookie.encode("utf-8", "replace").decode("latin-1"))
    with fake_fitbit() as fitbit:
        response = browser.open(
            path,
            method=method,
            query_string=encode(query, state),
            data=encode(form, state),
            content_type="application/x-www-form-urlencoded",
            environ_base=address,
        )
        response.close()
        token_requests = [c for c in fitbit.calls if c.request.url == fitbit_legacy.TOKEN_URL]
    return response, token_requests, parse_qs(encode(query, state), keep_blank_values=True), state


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    query=pairs,
    form=pairs,
    cookie=st.one_of(st.none(), raw, st.text(max_size=100)),
    with_own_cookie=st.booleans(),
)
def test_no_generated_request_to_any_route_gets_a_5xx(
    app, route, query, form, cookie, with_own_cookie
):
    response, token_requests, sent, state = send(app, *route, query, form, cookie, with_own_cookie)
    assert response.status_code < 500
    if token_requests:
        assert route == ("GET", "/auth/callback") and sent.get("state") == [state]


callback_names = st.sampled_from(["code", "state", "state", "error", "error_description"])


# The one request that should reach the token endpoint, so that the property is seen to hold
# with a token request too; and near misses: another browser, another state.
@example([("code", "c"), ("state", REAL_STATE)], None, True)
@example([("code", "c"), ("state", REAL_STATE)], None, False)
@example([("code", "c"), ("state", "forged")], None, True)
@SETTINGS
@given(
    query=st.lists(st.tuples(callback_names, values), max_size=5),
    cookie=st.one_of(st.none(), raw),
    with_own_cookie=st.booleans(),
)
def test_only_this_browsers_own_state_reaches_the_token_endpoint(
    app, query, cookie, with_own_cookie
):
    response, token_requests, sent, state = send(
        app, "GET", "/auth/callback", query, [], cookie, with_own_cookie
    )
    assert response.status_code < 500
    if token_requests:
        assert len(token_requests) == 1
        assert with_own_cookie and cookie is None and sent.get("state") == [state]
        assert parse_qs(token_requests[0].request.body)["code"] == sent["code"]


@st.composite
def token_answers(draw):
    """Bodies a token endpoint, or something pretending to be one, might send."""
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    )
    fields = st.fixed_dictionaries(
        {},
        optional={name: json_values | st.just(good) for name, good in token_body().items()},
    )
    body = draw(st.one_of(fields, json_values))
    text = draw(st.one_of(st.just(json.dumps(body)), st.text(max_size=50)))
    return draw(st.sampled_from([200, 200, 400, 401, 410, 429, 500, 503])), text


@pytest.mark.parametrize("dialect", [fitbit_legacy, google_health], ids=["fitbit", "google"])
@settings(max_examples=500, deadline=None)
@given(answer=token_answers())
def test_the_token_response_parser_only_ever_returns_tokens_or_a_provider_error(dialect, answer):
    status, text = answer
    response = requests.Response()
    response.status_code, response._content = status, text.encode()
    response.headers["Content-Type"] = "application/json"
    try:
        client = oauth.Client(dialect, "23TEST", "secret", "http://localhost/cb")
        tokens = oauth.parse_token_response(client, response, requested_scope="activity profile")
    except oauth.ProviderError:
        return
    assert status == 200
    assert tokens.access_token
    # Each of the others is absent (None) or a real value, never an empty or odd one.
    for value in (tokens.refresh_token, tokens.user_id):
        assert value is None or (isinstance(value, str) and value)
    assert tokens.expires_at > datetime.now(UTC)


EVERY_ROUTE = [
    *ROUTES,
    ("GET", "/sandbox/avatars/7QW2XR.svg"),
    ("GET", "/sandbox/google/o/oauth2/v2/auth"),
    ("POST", "/sandbox/google/o/oauth2/v2/auth"),
    ("POST", "/sandbox/google/token"),
    ("POST", "/sandbox/google/revoke"),
    ("GET", "/sandbox/google/v1/userinfo"),
    ("GET", "/sandbox/google/v4/users/me/identity"),
    ("GET", "/sandbox/google/v4/users/me/profile"),
    ("GET", "/sandbox/google/v4/users/me/settings"),
    ("POST", "/sandbox/google/v4/users/me/dataTypes/steps/dataPoints:dailyRollUp"),
    ("GET", "/sandbox/google/v4/users/me/dataTypes/steps/dataPoints"),
    ("GET", "/sandbox/google/avatars/hu-4f1e9c2a7b.svg"),
    # Webhooks: the app's endpoints (one of them 404 in each dialect), and the stand-ins'.
    ("GET", "/webhooks/fitbit"),
    ("POST", "/webhooks/fitbit"),
    ("POST", "/webhooks/google"),
    ("GET", "/sandbox/walk"),
    ("POST", "/sandbox/walk"),
    ("POST", "/sandbox/google/walk"),
    ("POST", "/sandbox/1/user/-/activities/apiSubscriptions/1.json"),
    ("GET", "/sandbox/1/user/-/apiSubscriptions.json"),
    ("GET", "/sandbox/google/googlehealthapi/webhooks/webhooks_public_keyset.json"),
    # One more kind of data at a time, and a user's own data: downloaded, or deleted.
    ("POST", "/auth/more"),
    ("GET", "/my-data"),
    ("GET", "/my-data/steps.csv"),
    ("GET", "/my-data/delete"),
    ("POST", "/my-data/delete"),
    # The stand-ins' sleep and heart rate, their subscriptions, nights, and OpenID Connect.
    ("GET", "/sandbox/1/user/-/activities/heart/date/today/30d.json"),
    ("GET", "/sandbox/1.2/user/-/sleep/date/2026-11-24/2026-12-07.json"),
    ("GET", "/sandbox/1/user/-/activities/apiSubscriptions.json"),
    ("POST", "/sandbox/1/user/-/apiSubscriptions/1.json"),
    ("DELETE", "/sandbox/1/user/-/apiSubscriptions/1.json"),
    ("DELETE", "/sandbox/1/user/-/activities/apiSubscriptions/1.json"),
    ("POST", "/sandbox/night"),
    ("GET", "/sandbox/google/.well-known/openid-configuration"),
    ("GET", "/sandbox/google/oauth2/v3/certs"),
    ("GET", "/sandbox/google/oauth2/v3/userinfo"),
    ("GET", "/sandbox/google/v4/users/me/dataTypes/sleep/dataPoints"),
    ("GET", "/sandbox/google/v4/users/me/dataTypes/daily-resting-heart-rate/dataPoints"),
    # The heart rate through the day, and the workouts.
    ("GET", "/sandbox/1/user/-/activities/heart/date/today/1d/1min.json"),
    ("GET", "/sandbox/1/user/-/activities/heart/date/today/1d/1sec/time/08:00/09:30.json"),
    ("GET", "/sandbox/1/user/-/activities/list.json"),
    ("GET", "/sandbox/google/v4/users/me/dataTypes/heart-rate/dataPoints"),
    ("GET", "/sandbox/google/v4/users/me/dataTypes/exercise/dataPoints"),
    ("GET", "/sandbox/google/walk"),
    ("POST", "/sandbox/google/night"),
    ("GET", "/sandbox/google/v4/projects/123456789/subscribers"),
    ("POST", "/sandbox/google/v4/projects/123456789/subscribers"),
    ("GET", "/sandbox/google/v4/projects/123456789/subscribers/app"),
    ("PATCH", "/sandbox/google/v4/projects/123456789/subscribers/app"),
    ("DELETE", "/sandbox/google/v4/projects/123456789/subscribers/app"),
    ("GET", "/sandbox/google/v4/operations/op-1"),
    ("GET", "/sandbox/google/v4/projects/123456789/operations/op-1"),
]
hosts = st.one_of(
    st.sampled_from(["localhost:4000", "127.0.0.1:4000", "[::1]:4000", "", "a..b", "x:99999"]),
    st.builds(
        lambda n, tail: "a" * n + tail, st.integers(1, 300), st.sampled_from(["", ".example"])
    ),
    raw.map(lambda text: text.encode("latin-1", "replace").decode("latin-1")),
)
bodies = st.one_of(
    st.binary(max_size=300),
    pairs.map(lambda p: encode(p, "s").encode()),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=8,
    ).map(lambda value: json.dumps(value).encode()),
)
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded; charset=bogus",
    ]
)


class Tracebacks(logging.Handler):
    """Every log record that carries an exception: a traceback somebody would see."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def emit(self, record):
        if record.exc_info:
            self.seen.append(self.format(record))


@pytest.fixture(scope="module", params=["fitbit", "google"])
def sandbox_app(request, tmp_path_factory):
    """The app in sandbox mode in each dialect, both stand-ins mounted."""
    database = tmp_path_factory.mktemp("hostile") / "h.db"
    env = {"PROVIDER": request.param, "DATABASE_URL": f"sqlite:///{database}"}
    return create_app(config_from_env({**env, "SANDBOX_DATABASE": ":memory:"}, 4000))


def test_the_hostile_requests_are_sent_to_every_route(sandbox_app):
    """EVERY_ROUTE holds a path for each rule and method of the app's URL map and of both
    stand-ins', so that a route added later is sent hostile requests too."""
    maps = {"": sandbox_app.url_map}
    maps.update({kind.MOUNT: kind().url_map for kind in sandbox.STAND_INS.values()})
    missing = []
    for mount, url_map in maps.items():
        urls = url_map.bind("localhost")
        for rule in url_map.iter_rules():
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                if not any(reaches(urls, mount, rule, method, route) for route in EVERY_ROUTE):
                    missing.append((method, mount + rule.rule))
    assert missing == []


def reaches(urls, mount, rule, method, route):
    """Whether `route`, (method, path), is `method` on `rule` of a map mounted at `mount`."""
    if route[0] != method or not route[1].startswith(mount + "/"):
        return False
    try:
        matched, _ = urls.match(route[1][len(mount) :], method=method, return_rule=True)
    except HTTPException:
        return False
    return matched is rule


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    route=st.sampled_from(EVERY_ROUTE),
    suffix=st.one_of(st.just(""), raw),
    query=pairs,
    body=bodies,
    content_type=content_types,
    host=hosts,
    cookie=st.one_of(st.none(), raw),
)
def test_no_hostile_request_to_the_app_or_a_stand_in_gets_a_5xx_or_a_traceback(
    sandbox_app, route, suffix, query, body, content_type, host, cookie
):
    method, path = route
    browser = Client(sandbox_app)
    if cookie is not None:
        browser.set_cookie("session", cookie.encode("utf-8", "replace").decode("latin-1"))
    tracebacks = Tracebacks()
    logging.getLogger().addHandler(tracebacks)
    # Nothing hostile may make the app call out: any request it sent would fail here.
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        try:
            response = browser.open(
                path + quote(suffix, safe="%/"),
                method=method,
                query_string=encode(query, "s"),
                data=body,
                headers={"Host": host, "Content-Type": content_type},
                environ_base={"REMOTE_ADDR": f"2001:db8::{next(addresses):x}"},
            )
            response.close()
        finally:
            logging.getLogger().removeHandler(tracebacks)
    assert response.status_code < 500, (method, path, host)
    assert tracebacks.seen == []
