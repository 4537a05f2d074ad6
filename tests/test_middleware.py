"""middleware.py: the security headers on every kind of response, and a development
server whose access log never shows the code and that answers malformed request lines."""

import logging
import threading

import pytest
import requests
from conftest import (
    AUTH_CODE,
    assert_security_headers,
    listening,
    raw_exchange,
)
from werkzeug.serving import make_server
from werkzeug.test import Client

from fitbit_oauth_app import create_app
from middleware import CallbackLogHandler
from settings import config_from_env


@pytest.fixture
def sandbox_browser(tmp_path):
    """A browser on the app in sandbox mode: the stand-in is mounted at /sandbox."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'sb.db'}", "SANDBOX_DATABASE": ":memory:"}
    config = config_from_env(env, 4000)
    return Client(create_app(config))


@pytest.mark.parametrize(
    "method, path, status",
    [
        ("GET", "/", 200),
        ("GET", "/users", 200),
        ("GET", "/auth", 302),
        ("GET", "/no-such-page", 404),
        ("GET", "/logout", 405),
        ("POST", "/logout", 403),
        ("GET", "/static/style.css", 200),
        ("GET", "/sandbox/oauth2/authorize", 400),  # the stand-in's HTML error page
        ("GET", "/sandbox/1/user/-/profile.json", 401),  # its JSON error
        ("GET", "/sandbox/avatars/7QW2XR.svg", 200),
    ],
)
def test_security_headers_on_every_kind_of_response(sandbox_browser, method, path, status):
    response = sandbox_browser.open(path, method=method)
    response.close()
    assert response.status_code == status
    assert_security_headers(response.headers)


def test_access_log_never_shows_the_code(app, caplog):
    caplog.set_level(logging.INFO, logger="werkzeug")
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=CallbackLogHandler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        requests.get(f"{url}/auth/callback?code={AUTH_CODE}&state=abc", timeout=5)
        requests.get(f"{url}/users?page=2", timeout=5)
    finally:
        server.shutdown()
        thread.join()
    assert "GET /auth/callback?[redacted]" in caplog.text
    assert "GET /users?page=2" in caplog.text  # other lines are left as they were
    assert AUTH_CODE not in caplog.text


@pytest.mark.parametrize(
    "request_line, status",
    [
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1", "414"),
        (b"BOGUS", "400"),
        (b"GET / HTTP/9.9", "505"),
        (b"GET / HTTP/1.1\r\nHost: " + b"h" * 70_000, "431"),
    ],
    ids=["huge-url", "no-method", "unknown-version", "huge-header"],
)
def test_malformed_request_lines_are_answered_not_dropped(app, capfd, request_line, status):
    with listening() as (server,):
        server.app = app
        answer = raw_exchange(server.server_port, request_line + b"\r\n\r\n")
    # Python's server answers a request line it cannot read in HTTP/0.9, without a status
    # line, so the code is looked for in the error page as well.
    assert answer.startswith(f"HTTP/1.0 {status} ") or f"Error code: {status}" in answer
    assert "Traceback" not in capfd.readouterr().err
