"""What the two stand-ins share: plumbing, and none of either provider's rules.

sandbox.py plays Fitbit and sandbox_google.py plays Google; each is a `StandIn` with its own
endpoints, answers and errors. Here is what is the same around them: the body limit, the
security headers on every answer, the consent page and the way back to the app, the made-up
data of the demo people, and the registration of the app. Like them, it is written from
the provider's side and shares no code with the client.
"""

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader
from werkzeug.utils import redirect
from werkzeug.wrappers import Request as BaseRequest
from werkzeug.wrappers import Response

from sandbox_store import StandInStore

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATABASE = "fitbit_sandbox.db"
# The largest form any endpoint needs; a bigger body is refused before it is read.
MAX_BODY_BYTES = 64 * 1024
# On every answer, unless it sets its own.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def now():
    return datetime.now(UTC)


class Request(BaseRequest):
    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES


class AuthorizePageError(Exception):
    """An authorization request too broken to send back: shown here, never redirected."""


def as_json(body, status=200, headers=None):
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


def same(given, expected):
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def steps_on(person_id, day, today):
    """A plausible, repeatable step count: the same person and day always give the same
    value, at Fitbit and at Google alike."""
    if day > today:
        return 0
    seed = int.from_bytes(hashlib.sha256(f"{person_id}:{day.isoformat()}".encode()).digest()[:4])
    steps = 3500 + seed % 9000 + (2500 if day.weekday() >= 5 else 0)
    if day == today:  # today is not over yet
        elapsed = now() - datetime.combine(today, datetime.min.time(), UTC)
        steps = int(steps * elapsed.total_seconds() / 86400)
    return steps


def avatar(full_name, colour):
    """A round picture with the person's initials, as an SVG answer."""
    initials = "".join(word[0] for word in full_name.split())
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
        f'<circle cx="50" cy="50" r="50" fill="{colour}"/>'
        '<text x="50" y="62" font-size="36" font-family="sans-serif" fill="#fff" '
        f'text-anchor="middle">{initials}</text></svg>'
    )
    return Response(svg, mimetype="image/svg+xml")


class StandIn:
    """A provider's stand-in as a WSGI app. Its state lives in `database` (see
    sandbox_store.py), shared by every worker that opens the same file; `clients` are
    registered in it. A subclass has the provider's `url_map`, its `on_<endpoint>` methods
    and its `dispatch_request`."""

    NAME = "Fitbit"  # on its pages
    DEFAULT_EXPIRES_IN = 28800
    RATE_LIMIT = 150

    def __init__(self, clients=(), expires_in=None, rate_limit=None, database=":memory:"):
        self.store = StandInStore(database)
        for client in clients:
            self.store.register(client)
        self.expires_in = expires_in or self.DEFAULT_EXPIRES_IN
        self.rate_limit = rate_limit or self.RATE_LIMIT
        self.jinja = Environment(
            loader=FileSystemLoader(os.path.join(HERE, "templates", "sandbox")), autoescape=True
        )

    @staticmethod
    def database_for(path):
        """This stand-in's SQLite file, given SANDBOX_DATABASE."""
        return path

    def generated_client(self, redirect_uri):
        """The app registered for `redirect_uri`, made once (see StandInStore), with a
        client id in the provider's own style (`new_client_id`)."""
        return self.store.generated_client(redirect_uri, self.new_client_id)

    def back_to_app(self, consent, **result):
        """The redirect to the app's callback, with the state it sent, if any."""
        if consent.state is not None:
            result["state"] = consent.state
        separator = "&" if "?" in consent.client.redirect_uri else "?"
        return redirect(consent.client.redirect_uri + separator + urlencode(result), code=302)

    def render(self, template_name, status=200, **context):
        html = self.jinja.get_template(template_name).render(stand_in=self.NAME, **context)
        response = Response(html, status=status, mimetype="text/html")
        # No form-action: after Allow, this page's form redirects to the app's origin.
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"  # nobody may frame the consent page
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def __call__(self, environ, start_response):
        response = self.dispatch_request(Request(environ))
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response(environ, start_response)
