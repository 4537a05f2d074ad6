"""A local stand-in for Fitbit: its OAuth 2.0 server and two Web API endpoints.

Fitbit retired its legacy Web API in autumn 2026, so this file plays the other party. It
follows Fitbit's protocol (see ../shared/fitbit-api.md in the project notes) and refuses
what Fitbit would refuse, and it is written from Fitbit's side: it shares no code with
the client in oauth.py.

    GET  /oauth2/authorize   the consent page (RFC 6749 4.1.1, PKCE RFC 7636)
    POST /oauth2/authorize   the user's Allow or Deny
    POST /oauth2/token       codes and refresh tokens for tokens (RFC 6749 4.1.3, 6)
    POST /oauth2/revoke      end a user's grant (RFC 7009)
    GET  /1/user/-/profile.json
    GET  /1/user/-/activities/steps/date/<date>/<period>.json

Run it alone with `python sandbox.py --port 4001`, or `--provider google` for Google's side
(sandbox_google.py); in sandbox mode the app mounts both itself. What it remembers (apps,
codes, tokens) is kept in the SQLite file SANDBOX_DATABASE (fitbit_sandbox.db), by
sandbox_store.py, so that every worker shares it and a restart keeps it.
"""

import argparse
import base64
import calendar
import hashlib
import logging
import os
import re
import secrets
from datetime import date, timedelta

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import run_simple
from werkzeug.wrappers import Response

import sandbox_google
from sandbox_base import (
    DEFAULT_DATABASE,
    MAX_BODY_BYTES,  # noqa: F401 (part of what this stand-in is)
    AuthorizePageError,
    StandIn,
    as_json,
    avatar,
    now,
    same,
    steps_on,
)
from sandbox_store import AuthorizationCode, ConsentRequest, Grant, RegisteredClient

# Fitbit's scopes, with what the consent page says each one lets the app see.
SCOPES = {
    "activity": "your activity and exercise: steps, distance, calories, active minutes",
    "cardio_fitness": "your cardio fitness score (VO2 max)",
    "electrocardiogram": "your ECG readings",
    "heartrate": "your heart rate",
    "irregular_rhythm_notifications": "your irregular heart rhythm notifications",
    "location": "the GPS routes of your exercise",
    "nutrition": "your food and water logs",
    "oxygen_saturation": "your blood oxygen (SpO2)",
    "profile": "your profile: name, picture, age and member-since date",
    "respiratory_rate": "your breathing rate",
    "settings": "your device settings and alarms",
    "sleep": "your sleep",
    "social": "your friends and leaderboard",
    "temperature": "your skin temperature",
    "weight": "your weight and body fat",
}
CODE_LIFETIME = timedelta(minutes=10)
DEFAULT_EXPIRES_IN = 28800  # eight hours, as at Fitbit
RATE_LIMIT = 150  # API calls per user per app per hour
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")  # base64url of 32 bytes, unpadded
DAY_PERIODS = {"1d": 1, "7d": 7, "30d": 30, "1w": 7}
MONTH_PERIODS = {"1m": 1, "3m": 3, "6m": 6, "1y": 12}
MAX_RANGE_DAYS = 1095
# An expired access token is still recognised for a day, and answered "expired_token" as
# Fitbit does; after that it is forgotten, and unknown.
EXPIRED_TOKEN_MEMORY = timedelta(days=1)
# Each request drops at most this many stale entries of each kind, so that the work per
# request stays small and the stand-in left running does not grow without end.
PRUNE_BATCH = 50
# Two people to sign in as; the data they "recorded" is made up from their id and the date.
DEMO_USERS = {
    "7QW2XR": {
        "displayName": "Alex R.",
        "fullName": "Alex Rivera",
        "memberSince": "2016-03-14",
    },
    "9KD3MS": {
        "displayName": "Sam K.",
        "fullName": "Sam Kowalski",
        "memberSince": "2019-09-02",
    },
}


class OAuthError(Exception):
    """An answer in Fitbit's error shape: {"errors": [...], "success": false}."""

    def __init__(self, status, error_type, message, headers=None):
        super().__init__(message)
        self.status, self.error_type, self.message = status, error_type, message
        self.headers = headers or {}


def fitbit_error(status, error_type, message, headers=None):
    body = {"errors": [{"errorType": error_type, "message": message}], "success": False}
    return as_json(body, status, headers)


def single(values, name):
    """RFC 6749 3.1 and 3.2: a parameter is sent at most once."""
    found = values.getlist(name)
    if len(found) > 1:
        raise OAuthError(400, "invalid_request", f"Parameter {name} is repeated.")
    return found[0] if found else None


def months_before(day, months):
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


class Sandbox(StandIn):
    """Fitbit's side, as a WSGI app (see sandbox_base.StandIn for the plumbing)."""

    NAME = "Fitbit"
    MOUNT = "/sandbox"  # where the app serves it in sandbox mode
    DEFAULT_EXPIRES_IN = DEFAULT_EXPIRES_IN
    RATE_LIMIT = RATE_LIMIT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.url_map = Map(
            [
                Rule("/oauth2/authorize", endpoint="authorize", methods=["GET"]),
                Rule("/oauth2/authorize", endpoint="decide", methods=["POST"]),
                Rule("/oauth2/token", endpoint="token", methods=["POST"]),
                Rule("/oauth2/revoke", endpoint="revoke", methods=["POST"]),
                Rule("/1/user/-/profile.json", endpoint="profile", methods=["GET"]),
                Rule(
                    "/1/user/-/activities/steps/date/<first>/<second>.json",
                    endpoint="steps",
                    methods=["GET"],
                ),
                Rule("/avatars/<user_id>.svg", endpoint="avatar", methods=["GET"]),
            ]
        )

    @staticmethod
    def new_client_id():
        return secrets.token_hex(3).upper()  # six characters, as Fitbit's are

    @staticmethod
    def settings(root):
        """The app's settings that point it at this stand-in, served from `root`."""
        return {
            "FITBIT_AUTHORIZE_URL": f"{root}/oauth2/authorize",
            "FITBIT_TOKEN_URL": f"{root}/oauth2/token",
            "FITBIT_REVOKE_URL": f"{root}/oauth2/revoke",
            "FITBIT_API_URL": root,
        }

    # The consent page ------------------------------------------------------------------

    def on_authorize(self, request):
        """Check the request before showing anything. A bad client or redirect_uri must
        never lead to a redirect: that would make this an open redirector."""
        args = request.args
        try:
            client = self.store.client(single(args, "client_id") or "")
            if client is None:
                raise AuthorizePageError("This app is not registered (unknown client_id).")
            sent = single(args, "redirect_uri")
            if sent != client.redirect_uri:
                raise AuthorizePageError(
                    f"redirect_uri {sent or '(none)'} does not match the registered one, "
                    f"{client.redirect_uri}, exactly."
                )
            if single(args, "response_type") != "code":
                raise AuthorizePageError("Only response_type=code is supported here.")
            scopes = (single(args, "scope") or "").split()
            if not scopes or any(scope not in SCOPES for scope in scopes):
                raise AuthorizePageError("scope is missing or names an unknown scope.")
            # PKCE is Fitbit's recommendation for Server apps, not its rule: clients written
            # without it (python-fitbit, say) sign in all the same. A challenge that is sent
            # must be S256; Fitbit would take a missing method for "plain", refused here.
            challenge = single(args, "code_challenge") or ""
            method = single(args, "code_challenge_method")
            if (challenge or method) and method != "S256":
                raise AuthorizePageError("code_challenge_method must be S256.")
            if method and not PKCE_CHALLENGE.fullmatch(challenge):
                raise AuthorizePageError("code_challenge is missing or malformed.")
            state = single(args, "state")
        except OAuthError as error:
            raise AuthorizePageError(error.message) from None

        request_id = secrets.token_urlsafe(32)
        self.store.add_consent(
            request_id,
            ConsentRequest(client, tuple(dict.fromkeys(scopes)), state, challenge, now()),
        )
        return self.render(
            "consent.html",
            client=client,
            scopes={scope: SCOPES[scope] for scope in scopes},
            always={},
            request_id=request_id,
            users=DEMO_USERS,
        )

    def on_decide(self, request):
        """Allow or Deny. The request id in the form is single-use and unguessable, which
        also makes it this form's CSRF token."""
        consent = self.store.take_consent(request.form.get("request_id", ""))
        if consent is None or now() > consent.created_at + CODE_LIFETIME:
            raise AuthorizePageError("This consent page has expired. Start again from the app.")

        user_id = request.form.get("user_id", "")
        granted = [scope for scope in consent.scopes if scope in request.form.getlist("scope")]
        if request.form.get("decision") != "allow" or user_id not in DEMO_USERS or not granted:
            return self.back_to_app(consent, error="access_denied")

        code = secrets.token_hex(20)
        grant = Grant(consent.client.client_id, user_id, " ".join(granted))
        self.store.add_code(
            code,
            AuthorizationCode(grant, consent.client.redirect_uri, consent.code_challenge, now()),
        )
        return self.back_to_app(consent, code=code)

    # The token endpoint ----------------------------------------------------------------

    def authenticate_client(self, request):
        """HTTP Basic only, as Fitbit does for Server apps; a secret in the body is refused."""
        if "client_secret" in request.form:
            raise OAuthError(401, "invalid_client", "Send the client secret with Basic auth.")
        auth = request.headers.get("Authorization", "")
        scheme, _, encoded = auth.partition(" ")
        try:
            client_id, _, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        except ValueError:
            client_id = secret = ""
        client = self.store.client(client_id)
        if scheme.lower() != "basic" or client is None or not same(secret, client.client_secret):
            raise OAuthError(401, "invalid_client", "Invalid authorization header.")
        if request.form.get("client_id", client_id) != client_id:
            raise OAuthError(401, "invalid_client", "client_id does not match the header.")
        return client

    def on_token(self, request):
        if request.mimetype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "Send the parameters as a form.")
        client = self.authenticate_client(request)
        grant_type = single(request.form, "grant_type")
        if grant_type == "authorization_code":
            grant = self.redeem_code(request.form, client)
        elif grant_type == "refresh_token":
            grant = self.redeem_refresh_token(request.form, client)
        else:
            raise OAuthError(400, "unsupported_grant_type", "Unsupported grant_type.")
        return as_json(self.issue_tokens(grant), headers={"Cache-Control": "no-store"})

    def redeem_code(self, form, client):
        code = single(form, "code")
        redirect_uri = single(form, "redirect_uri")
        verifier = single(form, "code_verifier")
        if not code or not redirect_uri:
            raise OAuthError(400, "invalid_request", "code and redirect_uri are required.")
        # Single use, whatever happens next. RFC 6749 4.1.2: a code used twice also revokes
        # the tokens issued from it, in case the first use was an attacker's.
        issued, _ = self.store.redeem_code(code)
        if issued is None or now() > issued.issued_at + CODE_LIFETIME:
            raise OAuthError(400, "invalid_grant", "Authorization code invalid or expired.")
        if issued.grant.client_id != client.client_id or redirect_uri != issued.redirect_uri:
            raise OAuthError(
                400, "invalid_grant", "Authorization code was issued to another client."
            )
        if issued.code_challenge:
            # The sign-in began with a challenge: only the holder of its verifier may finish
            # it (RFC 7636 4.6).
            if not verifier or not PKCE_VERIFIER.fullmatch(verifier):
                raise OAuthError(400, "invalid_grant", "code_verifier is missing or malformed.")
            digest = hashlib.sha256(verifier.encode("ascii")).digest()
            challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
            if not same(challenge, issued.code_challenge):
                raise OAuthError(
                    400, "invalid_grant", "code_verifier does not match the challenge."
                )
        return issued.grant

    def redeem_refresh_token(self, form, client):
        token = single(form, "refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "refresh_token is required.")
        # Single use: spending it rotates the pair, and the old one is dead at once.
        grant = self.store.spend_refresh_token(token, client.client_id)
        if grant is None:
            raise OAuthError(400, "invalid_grant", "Refresh token invalid.")
        return grant

    def issue_tokens(self, grant):
        access, refresh = secrets.token_urlsafe(32), secrets.token_hex(32)
        self.store.add_tokens(grant, access, refresh, now() + timedelta(seconds=self.expires_in))
        return {
            "access_token": access,
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "scope": grant.scope,
            "token_type": "Bearer",
            "user_id": grant.user_id,
        }

    def on_revoke(self, request):
        """RFC 7009: any of the user's tokens revokes all of them; an unknown token is not
        an error."""
        client = self.authenticate_client(request)
        token = single(request.form, "token")
        if not token:
            raise OAuthError(400, "invalid_request", "token is required.")
        grant = self.store.grant_of(token)
        if grant is not None and grant.client_id == client.client_id:
            self.store.forget_user(client.client_id, grant.user_id)
        return as_json({})

    def forget_the_unusable(self):
        """Drop consent pages, codes, long-expired access tokens and old call counts, a few
        at a time."""
        moment = now()
        self.store.prune(
            code_cutoff=moment - CODE_LIFETIME,
            token_cutoff=moment - EXPIRED_TOKEN_MEMORY,
            hour=moment.strftime("%Y%m%d%H"),
            most=PRUNE_BATCH,
        )

    # The Web API -----------------------------------------------------------------------

    def authorize_api_call(self, request, scope):
        """Bearer token, then scope, then the hourly budget; returns (grant, headers)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise OAuthError(401, "invalid_client", "Authorization header required.")
        access = self.store.access_token(token)
        if access is None:
            raise OAuthError(401, "invalid_token", "Access token invalid.")
        if now() >= access.expires_at:
            # Fitbit's real message repeats the token; clients must not show or log it.
            raise OAuthError(401, "expired_token", f"Access token expired: {token}")
        if scope not in access.grant.scope.split():
            raise OAuthError(403, "insufficient_scope", f"This call needs the {scope} scope.")

        moment = now()
        grant = access.grant
        used = self.store.count_call(grant.client_id, grant.user_id, moment.strftime("%Y%m%d%H"))
        headers = {
            "Fitbit-Rate-Limit-Limit": str(self.rate_limit),
            "Fitbit-Rate-Limit-Remaining": str(max(0, self.rate_limit - used)),
            "Fitbit-Rate-Limit-Reset": str(3600 - moment.minute * 60 - moment.second),
        }
        if used > self.rate_limit:
            raise OAuthError(429, "system", "Too Many Requests", headers)
        return access.grant, headers

    def on_profile(self, request):
        grant, headers = self.authorize_api_call(request, "profile")
        person = DEMO_USERS[grant.user_id]
        profile = {
            **person,
            "encodedId": grant.user_id,
            "avatar": f"{request.url_root}avatars/{grant.user_id}.svg",
            "timezone": "UTC",
        }
        return as_json({"user": profile}, headers=headers)

    def on_steps(self, request, first, second):
        grant, headers = self.authorize_api_call(request, "activity")
        today = now().date()
        try:
            base = today if first == "today" else date.fromisoformat(first)
            if second in DAY_PERIODS:
                start, end = base - timedelta(days=DAY_PERIODS[second] - 1), base
            elif second in MONTH_PERIODS:
                start, end = months_before(base, MONTH_PERIODS[second]) + timedelta(days=1), base
            else:  # /date/<start>/<end>.json
                start, end = base, today if second == "today" else date.fromisoformat(second)
        except (ValueError, OverflowError):  # not a date, or a period before year 1
            raise OAuthError(400, "validation", "Invalid date or period.") from None
        if start > end or (end - start).days >= MAX_RANGE_DAYS:
            raise OAuthError(400, "validation", "Invalid date range.")
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        series = [
            # Fitbit sends the count as a string.
            {"dateTime": day.isoformat(), "value": str(steps_on(grant.user_id, day, today))}
            for day in days
        ]
        return as_json({"activities-steps": series}, headers=headers)

    def on_avatar(self, request, user_id):
        person = DEMO_USERS.get(user_id)
        if person is None:
            return Response("Not found", status=404)
        return avatar(person["fullName"], "#00b0b9")

    # Plumbing --------------------------------------------------------------------------

    def dispatch_request(self, request):
        urls = self.url_map.bind_to_environ(request.environ)
        self.forget_the_unusable()
        try:
            endpoint, values = urls.match()
            return getattr(self, f"on_{endpoint}")(request, **values)
        except AuthorizePageError as error:
            return self.render("error.html", status=400, message=str(error))
        except OAuthError as error:
            return fitbit_error(error.status, error.error_type, error.message, error.headers)
        except HTTPException as error:
            # Fitbit answers unknown paths and methods in its JSON error shape too.
            error_type = "not_found" if error.code == 404 else "invalid_request"
            return fitbit_error(error.code, error_type, error.name)
        except Exception:
            logging.getLogger("sandbox").exception("The stand-in failed on %s", request.path)
            return fitbit_error(500, "system", "Internal error.")


STAND_INS = {"fitbit": Sandbox, "google": sandbox_google.GoogleSandbox}


def main(argv=None):
    parser = argparse.ArgumentParser(description="A local stand-in for Fitbit, or for Google.")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=4001)
    parser.add_argument(
        "--provider", choices=STAND_INS, default=os.environ.get("PROVIDER") or "fitbit"
    )
    args = parser.parse_args(argv)
    if args.provider not in STAND_INS:  # a default from PROVIDER is not checked by argparse
        parser.error(f"PROVIDER={args.provider!r} is not known: use fitbit or google.")

    env = os.environ
    kind = STAND_INS[args.provider]
    prefix = args.provider.upper()  # FITBIT_ or GOOGLE_, as the app reads them
    # The app's callback, as the app itself works it out: on the app's PORT.
    app_port = env.get("PORT") or "4000"
    redirect_uri = env.get(f"{prefix}_REDIRECT_URI") or f"http://localhost:{app_port}/auth/callback"
    database = kind.database_for(env.get("SANDBOX_DATABASE") or DEFAULT_DATABASE)
    expires_in = int(env.get("SANDBOX_EXPIRES_IN") or kind.DEFAULT_EXPIRES_IN)
    stand_in = kind(expires_in=expires_in, database=database)
    if env.get(f"{prefix}_CLIENT_ID") and env.get(f"{prefix}_CLIENT_SECRET"):
        client = RegisteredClient(
            env[f"{prefix}_CLIENT_ID"], env[f"{prefix}_CLIENT_SECRET"], redirect_uri
        )
        stand_in.store.register(client)
        credentials = f"using {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET from the environment"
    else:
        client = stand_in.generated_client(redirect_uri)
        credentials = (
            f"generated once and kept in {database}:\n"
            f"   {prefix}_CLIENT_ID={client.client_id}\n"
            f"   {prefix}_CLIENT_SECRET={client.client_secret}"
        )
    root = f"http://{args.host}:{args.port}"
    settings = "".join(f"   {name}={url}\n" for name, url in kind.settings(root).items())
    print(
        f" * {kind.NAME} stand-in on {root}, one client registered, {credentials}\n"
        f" * Redirect URI: {redirect_uri}\n"
        f" * Point the app at it with:\n{settings}",
        end="",
    )
    run_simple(args.host, args.port, stand_in, threaded=True)


if __name__ == "__main__":
    main()
