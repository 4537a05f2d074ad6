"""What the stand-ins share: the rules of OAuth 2.0 itself, and plumbing. None of either
provider's own rules are here.

Each stand-in is a `StandIn`: one WSGI app with two roles (RFC 6749 1.1), an authorization
server that issues tokens and a resource server that serves data with them. Here is what
is the same around them: single-valued parameters, HTTP Basic client credentials, the S256
check of PKCE, the dispatch to the two roles with each provider's error shape, the
security headers and body limit, the consent page's way back to the app, and the demo
people's steps and avatars. Like the rest of the package, it is written from the
provider's side and shares no code with the client.
"""

import base64
import hashlib
import hmac
import json
import logging
import os
import re
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.utils import redirect
from werkzeug.wrappers import Request as BaseRequest
from werkzeug.wrappers import Response

from . import recordings
from .notifications import Notifier
from .store import Store

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")
# The largest form any endpoint needs; a bigger body is refused before it is read.
MAX_BODY_BYTES = 64 * 1024
# On every answer, unless it sets its own.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# RFC 7636 4.1 and 4.2: a verifier of 43 to 128 unreserved characters, and an S256
# challenge, base64url of 32 bytes without padding.
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")

log = logging.getLogger("sandbox")


def now():
    return datetime.now(UTC)


class Request(BaseRequest):
    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES


# --- Errors ----------------------------------------------------------------------------


class AuthorizePageError(Exception):
    """An authorization request too broken to send back: shown here, never redirected."""


class OAuthError(Exception):
    """A refusal: its HTTP status, the provider's name for the error, and a description.
    Each stand-in answers it in its provider's own shape (`StandIn.error_answer`)."""

    def __init__(self, status, error, description, headers=None):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description
        self.headers = headers or {}


# --- OAuth 2.0's own rules ---------------------------------------------------------------


def single(values, name):
    """RFC 6749 3.1 and 3.2: a parameter is sent at most once."""
    found = values.getlist(name)
    if len(found) > 1:
        raise OAuthError(400, "invalid_request", f"Parameter {name} is repeated.")
    return found[0] if found else None


def basic_credentials(authorization):
    """(client_id, secret) from an HTTP Basic Authorization header (RFC 6749 2.3.1), or
    two empty strings when it is not one."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:
        return "", ""
    return client_id, secret


def s256(verifier):
    """The S256 challenge of a PKCE verifier (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def same(given, expected):
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def as_json(body, status=200, headers=None):
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    return response


# --- The two roles ------------------------------------------------------------------------


class Role:
    """One of a stand-in's two roles: its `RULES`, and an `on_<endpoint>` method for each."""

    RULES = []

    def __init__(self, stand_in):
        self.stand_in = stand_in
        self.store = stand_in.store


class AuthorizationServer(Role):
    """What both authorization servers' token endpoints do alike (RFC 6749 3.2): a form,
    an authenticated client, and one grant type of two. Each provider's subclass says how
    its client authenticates, how it redeems a code or a refresh token, and what it issues;
    `redeem_*` return the arguments of `issue_tokens`, after the request."""

    TOKEN_HEADERS = {}  # on every token answer
    OTHER_GRANTS = {}  # a provider's grant types beyond those two: {grant_type: method name}
    UNSUPPORTED_GRANT = "Unsupported grant_type."
    # The provider's words when the credentials are wrong, and when the form's client_id
    # is another than the one authenticated.
    BAD_CREDENTIALS = OTHER_CLIENT_ID = ""

    def on_token(self, request):
        if request.mimetype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "Send the parameters as a form.")
        client = self.authenticate_client(request)
        grant_type = single(request.form, "grant_type")
        redeem = {
            "authorization_code": self.redeem_code,
            "refresh_token": self.redeem_refresh_token,
        }.get(grant_type)
        if redeem is not None:
            issued = self.issue_tokens(request, *redeem(request.form, client))
        elif grant_type in self.OTHER_GRANTS:
            issued = getattr(self, self.OTHER_GRANTS[grant_type])(request.form, client)
        else:
            raise OAuthError(400, "unsupported_grant_type", self.UNSUPPORTED_GRANT)
        return as_json(issued, headers=self.TOKEN_HEADERS)

    def registered_client(self, form, client_id, secret):
        """The client these credentials authenticate, compared in constant time (RFC 6749
        2.3.1); a client_id in the form must name the same one."""
        client = self.store.clients.get(client_id)
        if client is None or not same(secret, client.client_secret):
            raise OAuthError(401, "invalid_client", self.BAD_CREDENTIALS)
        if form.get("client_id", client_id) != client_id:
            raise OAuthError(401, "invalid_client", self.OTHER_CLIENT_ID)
        return client


# --- The stand-in: two roles behind one URL map ---------------------------------------------


class StandIn:
    """A provider's stand-in as a WSGI app. Its state lives in `database` (see store/),
    shared by every worker that opens the same file; `clients` are registered in it. A
    subclass names its two roles, `AuthorizationServer` and `ResourceServer`, each with its
    `RULES` and `on_<endpoint>` methods, and answers errors in its provider's shape."""

    NAME = MOUNT = None  # its name on its pages, and where the app serves it
    DEFAULT_EXPIRES_IN = RATE_LIMIT = None  # each provider's own
    AuthorizationServer = ResourceServer = INTERNAL_ERROR = None
    WalkPage = None  # the demo people's own page (walk_page.py)
    OTHER_ROLES = ()  # a provider's own, beyond those (Google's subscribers API)

    def __init__(self, clients=(), expires_in=None, rate_limit=None, database=":memory:"):
        self.store = Store(database)
        for client in clients:
            self.store.clients.register(client)
        self.expires_in = expires_in or self.DEFAULT_EXPIRES_IN
        self.rate_limit = rate_limit or self.RATE_LIMIT
        self.jinja = Environment(
            loader=FileSystemLoader(os.path.join(TEMPLATES, "sandbox")), autoescape=True
        )
        self.authorization = self.AuthorizationServer(self)
        self.resources = self.ResourceServer(self)
        self.roles = {}
        self.other_roles = [role(self) for role in self.OTHER_ROLES]
        roles = (self.authorization, self.resources, self.WalkPage(self), *self.other_roles)
        for role in roles:
            self.roles.update({rule.endpoint: role for rule in role.RULES})
        self.url_map = Map([rule.empty() for role in roles for rule in role.RULES])
        self.notifier = Notifier()

    # --- Notifications: the demo people walk, and the apps hear of it ------------------

    def walk(self, user_id, steps, retry_in_background=True):
        """`steps` more for the person today, and a notification to each app that asked to
        hear of it: [(endpoint, status of the first try, or None)]. An app's subscriber
        must pass its provider's handshake first, or it is sent nothing."""
        moment, key = now(), self.data_key(user_id)
        self.store.walks.add(key, recordings.clock_of(key, moment).date(), steps)
        return self.notify(
            user_id, "steps", moment - timedelta(minutes=20), moment, retry_in_background
        )

    def log_night(self, user_id, minutes, retry_in_background=True):
        """A night of `minutes` in bed, logged by hand, ending at 07:00 this morning (or
        yesterday's, before then); each app that asked to hear of the person's sleep is told,
        as by walk()."""
        key = self.data_key(user_id)
        clock = recordings.clock_of(key)  # the person's own
        day = clock.date() if clock.time() >= time(7) else clock.date() - timedelta(days=1)
        self.store.nights.log(key, day, minutes)
        night = recordings.logged_night(day, minutes)
        start, end = (recordings.physical(key, edge) for edge in (night.start, night.end))
        return self.notify(user_id, "sleep", start, end, retry_in_background)

    def notify(self, user_id, data_type, start, end, retry_in_background):
        """Tell each app that asked to hear of the person's `data_type` ("steps" or "sleep")
        that it changed between `start` and `end`."""
        sent = []
        for subscriber, body, headers in self.notifications(user_id, data_type, start, end):
            if not subscriber.verified:
                if not self.handshake(subscriber):
                    log.warning("%s failed the handshake: nothing sent", subscriber.endpoint)
                    sent.append((subscriber.endpoint, None))
                    continue
                self.store.subscribers.verified(subscriber.client_id)
            status = self.notifier.deliver(subscriber.endpoint, body, headers, retry_in_background)
            sent.append((subscriber.endpoint, status))
        return sent

    def subscribers_of(self, client_id):
        """The app's subscribers, for the walk page: Fitbit's one, as added at
        dev.fitbit.com."""
        subscriber = self.store.subscribers.get(client_id)
        return [subscriber] if subscriber is not None else []

    def data_key(self, user_id):
        """Whose made-up data a user's is (steps, nights, heart rate): their own, by
        default."""
        return user_id

    @staticmethod
    def database_for(path):
        """This stand-in's SQLite file, given SANDBOX_DATABASE."""
        return path

    def generated_client(self, redirect_uri):
        """The app registered for `redirect_uri`, made once (see store/clients.py), with a
        client id in the provider's own style (`new_client_id`)."""
        return self.store.clients.generated(redirect_uri, self.new_client_id)

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

    def dispatch_request(self, request):
        self.forget_the_unusable()
        try:
            # Binding reads the Host header: one that no machine can be called is a 400 too.
            endpoint, values = self.url_map.bind_to_environ(request.environ).match()
            return getattr(self.roles[endpoint], f"on_{endpoint}")(request, **values)
        except AuthorizePageError as error:
            return self.render("error.html", status=400, message=str(error))
        except OAuthError as error:
            return self.error_answer(error)
        except HTTPException as error:
            return self.error_answer(self.unrouted(error))
        except Exception:
            log.exception("The %s stand-in failed on %s", self.NAME, request.path)
            return self.error_answer(self.INTERNAL_ERROR)

    def __call__(self, environ, start_response):
        response = self.dispatch_request(Request(environ))
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response(environ, start_response)


def back_to_app(consent, **result):
    """The redirect to the app's callback, with the state it sent, if any."""
    if consent.state is not None:
        result["state"] = consent.state
    separator = "&" if "?" in consent.client.redirect_uri else "?"
    return redirect(consent.client.redirect_uri + separator + urlencode(result), code=302)


# --- The demo people ---------------------------------------------------------------------


def steps_on(person_id, day):
    """A plausible, repeatable step count for a day of the person's own clock: the same
    person and day always give the same value, at Fitbit and at Google alike, the steps of
    the day's workout among them. Today's so far."""
    clock = recordings.clock_of(person_id)
    if day > clock.date():
        return 0
    seed = int.from_bytes(hashlib.sha256(f"{person_id}:{day.isoformat()}".encode()).digest()[:4])
    steps = 3500 + seed % 9000 + (2500 if day.weekday() >= 5 else 0)
    if day == clock.date():  # today is not over yet
        elapsed = clock - datetime.combine(day, time())
        steps = int(steps * elapsed.total_seconds() / 86400)
    return steps + recordings.workout_steps(person_id, day, clock)


def avatar(person, colour):
    """A round picture with the person's initials, as an SVG answer; 404 for nobody."""
    if person is None:
        return Response("Not found", status=404)
    initials = "".join(word[0] for word in person["fullName"].split())
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100">'
        f'<circle cx="50" cy="50" r="50" fill="{colour}"/>'
        '<text x="50" y="62" font-size="36" font-family="sans-serif" fill="#fff" '
        f'text-anchor="middle">{initials}</text></svg>'
    )
    return Response(svg, mimetype="image/svg+xml")
