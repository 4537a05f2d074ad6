"""A local stand-in for Google: its OAuth 2.0 server, OpenID Connect's userinfo, and the
Google Health API endpoints the app reads.

It follows ../shared/google-health-api.md in the project notes, refuses what Google would
refuse, and is written from Google's side: it shares no code with the client in oauth.py
or google_health.py. Beside sandbox.py (Fitbit's side), the differences are Google's own:

- PKCE is optional, and both S256 and plain are accepted; a client may authenticate with
  HTTP Basic or with its secret in the form.
- The token answer has no user_id. A refresh token comes only with access_type=offline,
  on the user's first consent or a forced one (prompt=consent); refreshing does not replace
  it, and it can be used again and again until it is revoked, or for 7 days, as for an app
  in "Testing".
- The granted scope is spelled Google's way: `profile` comes back as .../userinfo.profile.
- Health API errors are google.rpc.Status objects; OAuth errors follow RFC 6749 5.2.

    GET  /o/oauth2/v2/auth                the consent page
    POST /o/oauth2/v2/auth                the user's Allow or Deny
    POST /token                           codes and refresh tokens for tokens
    POST /revoke                          end a grant (no client authentication)
    GET  /v1/userinfo                     name and picture (OpenID Connect)
    GET  /v4/users/me/identity            the Health user id and the legacy Fitbit id
    GET  /v4/users/me/profile, /settings
    POST /v4/users/me/dataTypes/steps/dataPoints:dailyRollUp

The app mounts it at /sandbox/google in sandbox mode with PROVIDER=google; run it alone
with `python sandbox.py --provider google --port 4001`.
"""

import base64
import hashlib
import json
import logging
import os
import re
import secrets
from datetime import date, timedelta

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from sandbox_base import AuthorizePageError, StandIn, as_json, avatar, now, same, steps_on
from sandbox_store import AuthorizationCode, ConsentRequest, Grant

AUTHORIZE_PATH = "/o/oauth2/v2/auth"
TOKEN_PATH = "/token"
REVOKE_PATH = "/revoke"
USERINFO_PATH = "/v1/userinfo"
AUTH = "https://www.googleapis.com/auth/"
HEALTH = AUTH + "googlehealth."
# What the consent page says each scope lets the app see, by the name Google grants it
# under; a request may also use the short names `profile` and `email`.
SCOPES = {
    "openid": "who you are on Google",
    AUTH + "userinfo.profile": "your name and profile picture",
    AUTH + "userinfo.email": "your email address",
    HEALTH + "activity_and_fitness.readonly": "your activity: steps, distance, exercise",
    HEALTH + "health_metrics_and_measurements.readonly": "your heart rate, weight and more",
    HEALTH + "sleep.readonly": "your sleep",
    HEALTH + "location.readonly": "the routes of your exercise",
    HEALTH + "profile.readonly": "your Health profile: age, stride length, member since",
    HEALTH + "settings.readonly": "your Health settings: time zone, units",
}
SHORT_NAMES = {"profile": AUTH + "userinfo.profile", "email": AUTH + "userinfo.email"}
# Which scopes let a token read each part of the Health API.
IDENTITY_SCOPES = {scope for scope in SCOPES if scope.startswith(HEALTH)} - {
    HEALTH + "location.readonly"
}
STEPS_SCOPES = {
    HEALTH + name + ".readonly"
    for name in ("activity_and_fitness", "health_metrics_and_measurements", "location", "sleep")
}
CODE_LIFETIME = timedelta(minutes=10)
# This stand-in plays a Google Cloud app in "Testing", as a reader's own would be: its
# refresh tokens are reported to die a week after they were issued.
REFRESH_TOKEN_LIFETIME = timedelta(days=7)
DEFAULT_EXPIRES_IN = 3599  # an hour, less the second Google takes off
RATE_LIMIT = 300  # Health API requests per user per minute
MAX_RANGE_DAYS = 90  # for steps
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
S256_CHALLENGE = re.compile(r"[A-Za-z0-9\-_]{43}")
BEARER_CHALLENGE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'

# The people to sign in as, by Health user id. The first two are sandbox.py's Fitbit users,
# with their legacy ids, so a move from Fitbit to Google can be tried; Robin joined after
# the move and has no Fitbit id; Casey's Google account has no Health profile at all.
PEOPLE = {
    "hu-4f1e9c2a7b": {"fullName": "Alex Rivera", "given": "Alex", "legacy": "7QW2XR"},
    "hu-8d03b6e5c1": {"fullName": "Sam Kowalski", "given": "Sam", "legacy": "9KD3MS"},
    "hu-2a7c5e9f04": {"fullName": "Robin Osei", "given": "Robin", "legacy": None},
    "hu-c6b81d3e72": {
        "fullName": "Casey Ng",
        "given": "Casey",
        "legacy": None,
        "linked": False,
        "note": "no Google Health profile",
    },
}


class OAuthError(Exception):
    """RFC 6749 5.2: {"error": ..., "error_description": ...}."""

    def __init__(self, status, error, description):
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class ApiError(Exception):
    """google.rpc.Status: {"error": {"code", "message", "status", "details"}}."""

    def __init__(self, code, status, message, reason=None, headers=None):
        super().__init__(message)
        self.code, self.status, self.message, self.reason = code, status, message, reason
        self.headers = headers or {}


def single(values, name):
    found = values.getlist(name)
    if len(found) > 1:
        raise OAuthError(400, "invalid_request", f"Parameter {name} is repeated.")
    return found[0] if found else None


def civil_date(value):
    """A CivilTime date {"year", "month", "day"} of plain numbers (no leading zeros)."""
    try:
        parts = [value["date"][name] for name in ("year", "month", "day")]
        if any(isinstance(part, bool) or not isinstance(part, int) for part in parts):
            raise TypeError(parts)
        return date(*parts)
    except (TypeError, KeyError, ValueError):
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid civil date in range.") from None


def civil(day):
    return {"date": {"year": day.year, "month": day.month, "day": day.day}}


class GoogleSandbox(StandIn):
    """Google's side, as a WSGI app (see sandbox_base.StandIn for the plumbing)."""

    NAME = "Google"
    MOUNT = "/sandbox/google"  # where the app serves it in sandbox mode
    DEFAULT_EXPIRES_IN = DEFAULT_EXPIRES_IN
    RATE_LIMIT = RATE_LIMIT

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        me = "/v4/users/me"
        self.url_map = Map(
            [
                Rule(AUTHORIZE_PATH, endpoint="authorize", methods=["GET"]),
                Rule(AUTHORIZE_PATH, endpoint="decide", methods=["POST"]),
                Rule(TOKEN_PATH, endpoint="token", methods=["POST"]),
                Rule(REVOKE_PATH, endpoint="revoke", methods=["POST"]),
                Rule(USERINFO_PATH, endpoint="userinfo", methods=["GET"]),
                Rule(f"{me}/identity", endpoint="identity", methods=["GET"]),
                Rule(f"{me}/profile", endpoint="profile", methods=["GET"]),
                Rule(f"{me}/settings", endpoint="settings", methods=["GET"]),
                Rule(
                    f"{me}/dataTypes/steps/dataPoints:dailyRollUp",
                    endpoint="steps",
                    methods=["POST"],
                ),
                Rule("/avatars/<user_id>.svg", endpoint="avatar", methods=["GET"]),
            ]
        )

    @staticmethod
    def new_client_id():
        number, name = f"{secrets.randbelow(10**12):012}", secrets.token_hex(16)
        return f"{number}-{name}.apps.googleusercontent.com"

    @staticmethod
    def database_for(path):
        """A file of its own, next to the Fitbit stand-in's: a.db gives a-google.db."""
        if path == ":memory:":
            return path
        root, extension = os.path.splitext(str(path))
        return f"{root}-google{extension}"

    @staticmethod
    def settings(root):
        """The app's settings that point it at this stand-in, served from `root`."""
        return {
            "GOOGLE_AUTHORIZE_URL": root + AUTHORIZE_PATH,
            "GOOGLE_TOKEN_URL": root + TOKEN_PATH,
            "GOOGLE_REVOKE_URL": root + REVOKE_PATH,
            "GOOGLE_USERINFO_URL": root + USERINFO_PATH,
            "GOOGLE_HEALTH_API_URL": root,
        }

    # The consent page ------------------------------------------------------------------

    def on_authorize(self, request):
        args = request.args
        try:
            client = self.store.client(single(args, "client_id") or "")
            if client is None:
                raise AuthorizePageError(
                    "Error 401: invalid_client. The OAuth client was not found."
                )
            sent = single(args, "redirect_uri")
            if sent != client.redirect_uri:
                raise AuthorizePageError(
                    f"Error 400: redirect_uri_mismatch. {sent or '(none)'} is not the "
                    f"registered redirect URI, {client.redirect_uri}."
                )
            if single(args, "response_type") != "code":
                raise AuthorizePageError("Error 400: unsupported_response_type.")
            scopes = [SHORT_NAMES.get(s, s) for s in (single(args, "scope") or "").split()]
            if not scopes or any(scope not in SCOPES for scope in scopes):
                raise AuthorizePageError("Error 400: invalid_scope. A scope is missing or unknown.")
            challenge = single(args, "code_challenge") or ""
            method = single(args, "code_challenge_method") or ("plain" if challenge else None)
            if method not in (None, "plain", "S256") or (method and not challenge):
                raise AuthorizePageError("Error 400: invalid_request. Bad code_challenge_method.")
            pattern = S256_CHALLENGE if method == "S256" else PKCE_VERIFIER
            if challenge and not pattern.fullmatch(challenge):
                raise AuthorizePageError("Error 400: invalid_request. Malformed code_challenge.")
            access_type = single(args, "access_type") or "online"
            if access_type not in ("online", "offline"):
                raise AuthorizePageError("Error 400: invalid_request. Bad access_type.")
            prompt = set((single(args, "prompt") or "").split())
            if not prompt <= {"none", "consent", "select_account"} or (
                "none" in prompt and len(prompt) > 1
            ):
                raise AuthorizePageError("Error 400: invalid_request. Bad prompt.")
            state = single(args, "state")
        except OAuthError as error:
            raise AuthorizePageError(f"Error 400: {error.description}") from None

        consent = ConsentRequest(client, tuple(dict.fromkeys(scopes)), state, challenge, now())
        if "none" in prompt:
            # No page may be shown, and the user has not consented here before.
            return self.back_to_app(consent, error="interaction_required")
        request_id = secrets.token_urlsafe(32)
        self.store.add_consent(request_id, consent)
        extras = {
            "method": method,
            "offline": access_type == "offline",
            "forced": "consent" in prompt,
        }
        self.store.keep_extras(request_id, json.dumps(extras), now())
        return self.render(
            "consent.html",
            client=client,
            # Signing in with Google always tells the app who you are; the rest is a choice.
            scopes={scope: SCOPES[scope] for scope in consent.scopes if scope != "openid"},
            always={scope: SCOPES[scope] for scope in consent.scopes if scope == "openid"},
            request_id=request_id,
            users={
                health_id: {"fullName": person["fullName"], "note": person.get("note")}
                for health_id, person in PEOPLE.items()
            },
        )

    def on_decide(self, request):
        request_id = request.form.get("request_id", "")
        extras = json.loads(self.store.extras(request_id) or "{}")
        consent = self.store.take_consent(request_id)
        if consent is None or now() > consent.created_at + CODE_LIFETIME:
            raise AuthorizePageError("This consent page has expired. Start again from the app.")
        user_id = request.form.get("user_id", "")
        if request.form.get("decision") != "allow" or user_id not in PEOPLE:
            return self.back_to_app(consent, error="access_denied")
        # Granular consent: openid always, the rest as ticked.
        ticked = set(request.form.getlist("scope")) | {"openid"}
        granted = [scope for scope in consent.scopes if scope in ticked]
        if not granted:
            return self.back_to_app(consent, error="access_denied")

        client_id = consent.client.client_id
        # Google sends a refresh token only when it asks the user to consent: the first
        # time, or every time with prompt=consent. This stand-in asks when it knows of no
        # live refresh token for the user.
        first = not self.store.has_refresh_token(
            client_id, user_id, issued_after=now() - REFRESH_TOKEN_LIFETIME
        )
        refresh = extras.get("offline", False) and (extras.get("forced", False) or first)
        code = secrets.token_urlsafe(40)
        grant = Grant(client_id, user_id, " ".join(granted))
        self.store.add_code(
            code,
            AuthorizationCode(grant, consent.client.redirect_uri, consent.code_challenge, now()),
        )
        self.store.keep_extras(
            code, json.dumps({"method": extras.get("method"), "refresh": refresh}), now()
        )
        # Google's callback carries more than RFC 6749 asks for, and clients must take it.
        extra = {"authuser": "0", "prompt": "consent", "iss": request.url_root.rstrip("/")}
        return self.back_to_app(consent, code=code, scope=" ".join(granted), **extra)

    # The token endpoint ----------------------------------------------------------------

    def authenticate_client(self, request):
        """client_secret_basic or client_secret_post, but not both (RFC 6749 2.3)."""
        auth = request.headers.get("Authorization", "")
        in_form = "client_secret" in request.form
        if auth and in_form:
            raise OAuthError(400, "invalid_request", "Use one client authentication method.")
        if auth:
            scheme, _, encoded = auth.partition(" ")
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
                client_id, _, secret = decoded.partition(":")
            except ValueError:
                client_id = secret = ""
            if scheme.lower() != "basic":
                client_id = ""
        else:
            client_id = request.form.get("client_id", "")
            secret = request.form.get("client_secret", "")
        client = self.store.client(client_id)
        if client is None or not same(secret, client.client_secret):
            raise OAuthError(401, "invalid_client", "Unauthorized")
        if request.form.get("client_id", client_id) != client_id:
            raise OAuthError(401, "invalid_client", "client_id does not match.")
        return client

    def on_token(self, request):
        if request.mimetype != "application/x-www-form-urlencoded":
            raise OAuthError(400, "invalid_request", "Send the parameters as a form.")
        client = self.authenticate_client(request)
        grant_type = single(request.form, "grant_type")
        if grant_type == "authorization_code":
            grant, with_refresh = self.redeem_code(request.form, client)
        elif grant_type == "refresh_token":
            token = single(request.form, "refresh_token")
            if not token:
                raise OAuthError(
                    400, "invalid_request", "Missing required parameter: refresh_token"
                )
            grant = self.store.refresh_grant(
                token, client.client_id, issued_after=now() - REFRESH_TOKEN_LIFETIME
            )
            if grant is None:
                raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
            with_refresh = False  # the same refresh token goes on working
        else:
            raise OAuthError(400, "unsupported_grant_type", "Invalid grant_type.")
        return as_json(self.issue_tokens(grant, with_refresh), headers={"Pragma": "no-cache"})

    def redeem_code(self, form, client):
        code = single(form, "code")
        redirect_uri = single(form, "redirect_uri")
        verifier = single(form, "code_verifier")
        if not code or not redirect_uri:
            raise OAuthError(400, "invalid_request", "Missing code or redirect_uri.")
        extras = json.loads(self.store.extras(code) or "{}")
        issued, _ = self.store.redeem_code(code)  # single use; a replay revokes its tokens
        if issued is None or now() > issued.issued_at + CODE_LIFETIME:
            raise OAuthError(400, "invalid_grant", "Malformed auth code.")
        if issued.grant.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "The code was issued to another client.")
        if redirect_uri != issued.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        if issued.code_challenge:
            if not verifier or not PKCE_VERIFIER.fullmatch(verifier):
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            if extras.get("method") == "S256":
                digest = hashlib.sha256(verifier.encode("ascii")).digest()
                derived = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
            else:
                derived = verifier
            if not same(derived, issued.code_challenge):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        return issued.grant, extras.get("refresh", False)

    def issue_tokens(self, grant, with_refresh):
        access = "ya29." + secrets.token_urlsafe(48)
        refresh = "1//" + secrets.token_urlsafe(48) if with_refresh else None
        expires_at = now() + timedelta(seconds=self.expires_in)
        self.store.add_tokens(grant, access, refresh, expires_at)
        body = {
            "access_token": access,
            "expires_in": self.expires_in,
            "scope": grant.scope,
            "token_type": "Bearer",
        }
        if refresh:
            body["refresh_token"] = refresh
        return body

    def on_revoke(self, request):
        """No client authentication; the token in the form or the query. A dead or unknown
        token is a 400 invalid_token."""
        token = request.form.get("token") or request.args.get("token")
        grant = self.store.grant_of(token) if token else None
        if grant is None:
            raise OAuthError(400, "invalid_token", "Token expired or revoked")
        self.store.forget_grant(grant.grant_id)
        return as_json({})

    # userinfo and the Health API -------------------------------------------------------

    def bearer_grant(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        access = self.store.access_token(token) if scheme.lower() == "bearer" and token else None
        if access is None or now() >= access.expires_at:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                headers={"WWW-Authenticate": BEARER_CHALLENGE},
            )
        return access.grant

    def on_userinfo(self, request):
        grant = self.bearer_grant(request)
        person = PEOPLE[grant.user_id]
        info = {"sub": grant.user_id}
        if AUTH + "userinfo.profile" in grant.scope.split():
            info.update(
                name=person["fullName"],
                given_name=person["given"],
                family_name=person["fullName"].split()[-1],
                picture=f"{request.url_root}avatars/{grant.user_id}.svg",
            )
        return as_json(info)

    def health_call(self, request, scopes):
        """Bearer token, then scope, then the per-minute budget, then a linked profile."""
        grant = self.bearer_grant(request)
        if not scopes & set(grant.scope.split()):
            raise ApiError(
                403,
                "PERMISSION_DENIED",
                "Request had insufficient authentication scopes.",
                reason="ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
            )
        minute = now().strftime("%Y%m%d%H%M")
        if self.store.count_call(grant.client_id, grant.user_id, minute) > self.rate_limit:
            raise ApiError(
                429, "RESOURCE_EXHAUSTED", "Quota exceeded.", reason="RATE_LIMIT_EXCEEDED"
            )
        person = PEOPLE[grant.user_id]
        if person.get("linked") is False:
            raise ApiError(
                400, "FAILED_PRECONDITION", "No Google Health profile.", reason="ACCOUNT_NOT_LINKED"
            )
        return grant, person

    def on_identity(self, request):
        grant, person = self.health_call(request, IDENTITY_SCOPES)
        identity = {"name": "users/me/identity", "healthUserId": grant.user_id}
        if person["legacy"]:
            identity["legacyUserId"] = person["legacy"]
        return as_json(identity)

    def on_profile(self, request):
        grant, _ = self.health_call(request, {HEALTH + "profile.readonly"})
        return as_json(
            {
                "name": "users/me/profile",
                "age": 34,
                "membershipStartDate": civil(date(2016, 3, 14))["date"],
            }
        )

    def on_settings(self, request):
        self.health_call(request, {HEALTH + "settings.readonly"})
        return as_json({"name": "users/me/settings", "timeZone": "UTC", "utcOffset": "0s"})

    def on_steps(self, request):
        grant, person = self.health_call(request, STEPS_SCOPES)
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("range"), dict):
            raise ApiError(400, "INVALID_ARGUMENT", "range is required.")
        start, end = civil_date(body["range"].get("start")), civil_date(body["range"].get("end"))
        window = body.get("windowSizeDays", 1)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 90:
            raise ApiError(400, "INVALID_ARGUMENT", "windowSizeDays must be 1 to 90.")
        if end <= start:
            raise ApiError(400, "INVALID_ARGUMENT", "range.end must be after range.start.")
        if (end - start).days > MAX_RANGE_DAYS:
            raise ApiError(400, "INVALID_ARGUMENT", "The range may span at most 90 days.")
        today, who = now().date(), person["legacy"] or grant.user_id
        points = []
        first = start
        while first < end and first <= today:
            after = min(first + timedelta(days=window), end)
            total = sum(
                steps_on(who, first + timedelta(days=n), today) for n in range((after - first).days)
            )
            # proto3's JSON leaves out a zero int64, and with it an empty message's field.
            points.append(
                {
                    "civilStartTime": civil(first),
                    "civilEndTime": civil(after),
                    "steps": {"countSum": str(total)} if total else {},
                }
            )
            first = after
        return as_json({"rollupDataPoints": points[::-1]})  # newest first

    def on_avatar(self, request, user_id):
        person = PEOPLE.get(user_id)
        if person is None:
            return Response("Not found", status=404)
        return avatar(person["fullName"], "#1a73e8")

    # Plumbing --------------------------------------------------------------------------

    def dispatch_request(self, request):
        urls = self.url_map.bind_to_environ(request.environ)
        moment = now()
        self.store.prune(
            code_cutoff=moment - CODE_LIFETIME,
            token_cutoff=moment - timedelta(days=1),
            hour=moment.strftime("%Y%m%d%H%M"),
            most=50,
        )
        try:
            endpoint, values = urls.match()
            return getattr(self, f"on_{endpoint}")(request, **values)
        except AuthorizePageError as error:
            return self.render("error.html", status=400, message=str(error))
        except OAuthError as error:
            body = {"error": error.error, "error_description": error.description}
            return as_json(body, error.status)
        except ApiError as error:
            return self.status_answer(
                error.code, error.status, error.message, error.reason, error.headers
            )
        except HTTPException as error:
            status = "NOT_FOUND" if error.code == 404 else "INVALID_ARGUMENT"
            return self.status_answer(error.code, status, error.name)
        except Exception:
            logging.getLogger("sandbox").exception("The Google stand-in failed on %s", request.path)
            return self.status_answer(500, "INTERNAL", "Internal error encountered.")

    @staticmethod
    def status_answer(code, status, message, reason=None, headers=None):
        error = {"code": code, "message": message, "status": status}
        if reason:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "googleapis.com",
                }
            ]
        return as_json({"error": error}, code, headers)
