"""Shared fixtures: an app on a fresh database file, a browser, and a fake Fitbit."""

import os
import re
import socket
import threading
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import oidc
import pytest
import responses
from playhouse.db_url import connect
from werkzeug.serving import make_server
from werkzeug.test import Client

import encryption
import fitbit_legacy
import google_health
import oauth
import token_store
from fitbit_oauth_app import create_app
from middleware import CallbackLogHandler
from settings import Config, config_from_env

# A TOKEN_ENCRYPTION_KEYS for the tests that run the app with real credentials.
TOKEN_KEY = encryption.new_key_text()
# Sentinel secrets: tests grep every page, cookie and log line for them.
CLIENT_ID = "23TEST"
CLIENT_SECRET = "client-secret-SENTINEL-5f1c"
ACCESS_TOKEN = "access-token-SENTINEL-91ab"
REFRESH_TOKEN = "refresh-token-SENTINEL-77cd"
AUTH_CODE = "auth-code-SENTINEL-3e08"
SECRETS = (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN, AUTH_CODE)

REDIRECT_URI = "http://localhost:4000/auth/callback"
PROFILE_URL = fitbit_legacy.API_URL + "/1/user/-/profile.json"
STEPS_URL = fitbit_legacy.API_URL + "/1/user/-/activities/steps/date/today/1m.json"
# The activity log list, whatever its query (responses matches a URL without one so).
WORKOUTS_URL = fitbit_legacy.API_URL + fitbit_legacy.ACTIVITY_LIST_PATH
NO_WORKOUTS = {"activities": [], "pagination": {"next": "", "previous": ""}}
FITBIT_TODAY_URL = fitbit_legacy.API_URL + fitbit_legacy.HEART_RATE_TODAY_PATH
NO_READINGS = {
    "activities-heart": [],
    "activities-heart-intraday": {"dataset": [], "datasetInterval": 1, "datasetType": "minute"},
}
GOOGLE_LISTS = google_health.API_URL + google_health.DATA_TYPES
GOOGLE_EXERCISE_URL = GOOGLE_LISTS + "/exercise/dataPoints"
GOOGLE_HEART_RATE_URL = GOOGLE_LISTS + "/heart-rate/dataPoints"
GOOGLE_SETTINGS_URL = google_health.API_URL + google_health.SETTINGS_PATH
IN_UTC = {"name": "users/me/settings", "timeZone": "UTC", "utcOffset": "0s"}


def quiet_days(mock):
    """What both providers answer, unless a test says otherwise, for what the page reads
    beside the steps: no workouts, no readings through the day, and a user who lives in UTC.
    (responses matches a URL registered without a query whatever the query.)"""
    mock.get(WORKOUTS_URL, json=NO_WORKOUTS)
    mock.get(FITBIT_TODAY_URL, json=NO_READINGS)
    mock.get(GOOGLE_EXERCISE_URL, json={})  # proto3 leaves out an empty list
    mock.get(GOOGLE_HEART_RATE_URL, json={})
    mock.get(GOOGLE_SETTINGS_URL, json=IN_UTC)


# The database tests run on SQLite, and on PostgreSQL too where TEST_DATABASE_URL names one
# that may be wiped (`.ci/with-postgres make test` makes a throwaway cluster).
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
DATABASES = ["sqlite", "postgresql"] if TEST_DATABASE_URL else ["sqlite"]


def pytest_report_header(config):
    if TEST_DATABASE_URL:
        return "databases: SQLite and PostgreSQL (TEST_DATABASE_URL)"
    return "databases: SQLite only (set TEST_DATABASE_URL to run on PostgreSQL too)"


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(pytest_report_header(None))


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path):
    """A fresh, empty database of each kind: a new SQLite file, or PostgreSQL emptied."""
    url = f"sqlite:///{tmp_path / 'test.db'}" if request.param == "sqlite" else TEST_DATABASE_URL
    empty_database(url)
    return url


def empty_database(url):
    """Delete everything in a test database: the SQLite file, or PostgreSQL's tables."""
    if url.startswith("sqlite"):
        path = urlsplit(url).path[1:]
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    else:
        database = connect(url)
        database.execute_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        database.close()


def token_body(**overrides):
    body = {
        "access_token": ACCESS_TOKEN,
        "refresh_token": REFRESH_TOKEN,
        "expires_in": 28800,
        "scope": "activity profile",
        "token_type": "Bearer",
        "user_id": "ABC123",
    }
    body.update(overrides)
    return body


def profile_body(name="Alex"):
    return {"user": {"displayName": name, "encodedId": "ABC123", "memberSince": "2015-07-20"}}


def steps_body(values=(8123, 10500, 4200), last_day=date(2026, 11, 23)):
    """An activities/steps answer ending on last_day; values as Fitbit sends them (strings)."""
    first = last_day - timedelta(days=len(values) - 1)
    return {
        "activities-steps": [
            {"dateTime": (first + timedelta(days=n)).isoformat(), "value": str(value)}
            for n, value in enumerate(values)
        ]
    }


def fitbit_error(error_type, message="see the docs"):
    return {"errors": [{"errorType": error_type, "message": message}], "success": False}


@pytest.fixture
def client_config():
    return oauth.Client(
        fitbit_legacy, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uri=REDIRECT_URI
    )


@pytest.fixture
def config(tmp_path, client_config):
    return Config(
        client=client_config,
        database_url=f"sqlite:///{tmp_path / 'test.db'}",
        secret_key=b"test-secret-key",
    )


@pytest.fixture
def app(config):
    return create_app(config)


@pytest.fixture
def browser(app):
    """A browser: werkzeug's test client keeps cookies between requests."""
    return Client(app)


@pytest.fixture
def fitbit():
    """Fitbit, faked. Any request that nobody registered fails the test, but the quiet days
    of quiet_days()."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        quiet_days(mock)
        yield mock


@pytest.fixture
def google(monkeypatch):
    """Google, faked the same way, with its OpenID Connect keys (tests/oidc.py); the nonce
    of every sign-in is oidc.NONCE, so that an ID token can be made before it starts. As at
    Fitbit, quiet days unless a test says otherwise."""
    monkeypatch.setattr(oauth, "new_nonce", lambda: oidc.NONCE)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        oidc.serve_keys(mock)
        quiet_days(mock)
        yield mock


def start_sign_in(browser):
    """GET /auth; returns the query Fitbit would receive."""
    response = browser.get("/auth")
    assert response.status_code == 302
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def sign_in(browser, fitbit, name="Alex", **token_overrides):
    """The whole flow, with Fitbit answering as it should. Returns the callback response."""
    query = start_sign_in(browser)
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body(**token_overrides))
    fitbit.get(PROFILE_URL, json=profile_body(name))
    fitbit.get(STEPS_URL, json=steps_body())
    return browser.get("/auth/callback", query_string={"code": AUTH_CODE, "state": query["state"]})


def token_calls(fitbit):
    return [call for call in fitbit.calls if call.request.url == fitbit_legacy.TOKEN_URL]


def api_calls(fitbit):
    return [
        call for call in fitbit.calls if call.request.url.startswith(fitbit_legacy.API_URL + "/1/")
    ]


@contextmanager
def listening(count=1):
    """`count` servers on free ports of 127.0.0.1, each serving in a thread until the block
    ends. Ports come first, so each server's .app can be built knowing the others'."""
    servers = [
        make_server("127.0.0.1", 0, None, threaded=True, request_handler=CallbackLogHandler)
        for _ in range(count)
    ]
    threads = [threading.Thread(target=server.serve_forever) for server in servers]
    for thread in threads:
        thread.start()
    try:
        yield servers
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            thread.join()
            server.server_close()


def url_of(server):
    return f"http://127.0.0.1:{server.server_port}"


@contextmanager
def running_app(tmp_path, expires_in=600, provider="fitbit", **settings):
    """The app as `make run` starts it, in sandbox mode, on a real socket, with short-lived
    tokens at the stand-in (10 minutes), speaking `provider`'s dialect. Its databases are
    files in tmp_path, so a second run with the other provider finds the same users; any
    other `settings` are added to its environment. Yields its URL and its configuration."""
    with listening() as (server,):
        prefix = "GOOGLE" if provider == "google" else "FITBIT"
        env = {
            "PROVIDER": provider,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'live.db'}",
            f"{prefix}_REDIRECT_URI": f"{url_of(server)}/auth/callback",
            "SANDBOX_EXPIRES_IN": str(expires_in),
            "SANDBOX_DATABASE": str(tmp_path / "stand-in.db"),
            **settings,
        }
        server.app = create_app(config_from_env(env, server.server_port))
        yield url_of(server), server.app.config  # with the credentials the stand-in made


class Holding:
    """A stand-in as a test drives it: its answers to paths holding `fragment` made, then
    held back until `release()`, as if on their way (`arrived` is set once one waits), or
    every answer a 503 while `failing`. `asked` lists each request it was sent, as (method,
    path). Anything else is the stand-in's own (`.store`, `.walk`, ...)."""

    def __init__(self, stand_in):
        self.stand_in = stand_in
        self.fragment, self.failing, self.asked = None, False, []
        self.arrived, self.released = threading.Event(), threading.Event()

    def hold(self, fragment):
        self.fragment = fragment
        self.arrived.clear()
        self.released.clear()

    def release(self):
        self.fragment = None
        self.released.set()

    def __call__(self, environ, start_response):
        self.asked.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        if self.failing:
            start_response("503 Service Unavailable", [("Content-Type", "application/json")])
            return [b'{"error": "unavailable"}']
        if self.fragment and self.fragment in environ["PATH_INFO"]:
            answered = []
            body = b"".join(self.stand_in(environ, lambda *answer: answered.append(answer)))
            self.arrived.set()
            self.released.wait(30)
            start_response(*answered[0])
            return [body]
        return self.stand_in(environ, start_response)

    def __getattr__(self, name):
        return getattr(self.stand_in, name)


BESIDE_CLIENT = ("BESIDE", "beside-client-secret-SENTINEL")


@contextmanager
def beside_a_stand_in(tmp_path, provider="fitbit", expires_in=None, webhooks=False, **settings):
    """The app and a stand-in for `provider` on sockets of their own, in this process, as a
    reader runs them with `make sandbox` beside `make run`: the stand-in is at hand (a
    Holding), to look into or hold back. With `webhooks`, the app is the stand-in's
    subscriber. Any other `settings` join the app's environment. Yields (the app's URL,
    the stand-in)."""
    import sandbox

    with listening(2) as (app_server, provider_server):
        redirect_uri = f"{url_of(app_server)}/auth/callback"
        kind = sandbox.STAND_INS[provider]
        registered = sandbox.RegisteredClient(*BESIDE_CLIENT, redirect_uri)
        stand_in = Holding(
            kind([registered], expires_in, 100_000, str(tmp_path / f"{provider}-stand-in.db"))
        )
        provider_server.app = stand_in
        prefix = "GOOGLE" if provider == "google" else "FITBIT"
        env = {
            "PROVIDER": provider,
            f"{prefix}_CLIENT_ID": BESIDE_CLIENT[0],
            f"{prefix}_CLIENT_SECRET": BESIDE_CLIENT[1],
            f"{prefix}_REDIRECT_URI": redirect_uri,
            **kind.settings(url_of(provider_server)),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'beside.db'}",
            encryption.SETTING: TOKEN_KEY,
            "FITBIT_CACHE_SECONDS": "0",
        }
        if webhooks:
            endpoint = f"{url_of(app_server)}/webhooks/{provider}"
            subscriber = stand_in.generated_subscriber(BESIDE_CLIENT[0], endpoint)
            env[kind.WEBHOOK_SECRET_SETTING] = subscriber.secret
        app_server.app = create_app(config_from_env({**env, **settings}, app_server.server_port))
        yield url_of(app_server), stand_in


def live_tokens(stand_in, user_id):
    """The tokens the stand-in would still take for `user_id` from the app: access tokens
    not expired, and refresh tokens (of the app's grants)."""
    moment = datetime.now(UTC).timestamp()
    with stand_in.store.db.transaction() as sql:
        grants = "SELECT grant_id FROM grants WHERE user_id = ? AND client_id = ?"
        access = sql.execute(
            f"SELECT token FROM access_tokens WHERE grant_id IN ({grants}) AND expires_at > ?",
            (user_id, BESIDE_CLIENT[0], moment),
        ).fetchall()
        refresh = sql.execute(
            f"SELECT token FROM refresh_tokens WHERE grant_id IN ({grants})",
            (user_id, BESIDE_CLIENT[0]),
        ).fetchall()
    return [token for (token,) in access + refresh]


@pytest.fixture
def live_app(tmp_path):
    with running_app(tmp_path) as (url, _):
        yield url


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


def assert_security_headers(headers):
    assert headers["Content-Security-Policy"].startswith("default-src ")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"]
    assert headers["Cache-Control"] == "no-store"


def raw_exchange(port, data, done_sending=True):
    """Send bytes as they are, and return the answer: all of it, or with done_sending=False
    its first line, the connection left open as if more were on the way."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(data)
        if not done_sending:
            return connection.makefile("rb").readline().decode("latin-1")
        connection.shutdown(socket.SHUT_WR)
        return connection.makefile("rb").read().decode("latin-1")


def held(user):
    """The tokens a user's row holds, opened (token_store.tokens_of); both None when it holds
    none. The row itself has them only encrypted."""
    return token_store.tokens_of(user) or oauth.Tokens(None, None, None, None, "")
