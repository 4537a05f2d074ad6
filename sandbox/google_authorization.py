"""Google's authorization server: the consent page, the token endpoint and revocation.

    GET  /o/oauth2/v2/auth   the consent page
    POST /o/oauth2/v2/auth   the user's Allow or Deny
    POST /token              codes and refresh tokens for tokens
    POST /revoke             end a grant (no client authentication)

Beside Fitbit's (fitbit_authorization.py), the differences are Google's own: PKCE is
optional, and both S256 and plain are accepted; a client may authenticate with HTTP Basic
or with its secret in the form. The token answer has no user_id. A refresh token comes
only with access_type=offline, on the user's first consent or a forced one
(prompt=consent); refreshing does not replace it, and it can be used again and again until
it is revoked, or for 7 days, as for an app in "Testing". The granted scope is spelled
Google's way: `profile` comes back as .../userinfo.profile. Errors follow RFC 6749 5.2.
"""

import json
import secrets
from datetime import timedelta

from werkzeug.routing import Rule

from .common import (
    PKCE_VERIFIER,
    S256_CHALLENGE,
    AuthorizationServer,
    AuthorizePageError,
    OAuthError,
    as_json,
    back_to_app,
    basic_credentials,
    now,
    s256,
    same,
    single,
)
from .google_oidc import GoogleOpenIdConnect
from .google_resources import AUTH, HEALTH, PEOPLE
from .google_subscribers import GoogleServiceTokens
from .store import AuthorizationCode, ConsentRequest, Grant

AUTHORIZE_PATH = "/o/oauth2/v2/auth"
TOKEN_PATH = "/token"
REVOKE_PATH = "/revoke"
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
CODE_LIFETIME = timedelta(minutes=10)
# This stand-in plays a Google Cloud app in "Testing", as a reader's own would be: its
# refresh tokens are reported to die a week after they were issued.
REFRESH_TOKEN_LIFETIME = timedelta(days=7)
DEFAULT_EXPIRES_IN = 3599  # an hour, less the second Google takes off


class GoogleAuthorizationServer(GoogleOpenIdConnect, GoogleServiceTokens, AuthorizationServer):
    TOKEN_HEADERS = {"Pragma": "no-cache"}
    UNSUPPORTED_GRANT = "Invalid grant_type."
    BAD_CREDENTIALS = "Unauthorized"
    OTHER_CLIENT_ID = "client_id does not match."
    RULES = [
        *GoogleOpenIdConnect.RULES,
        Rule(AUTHORIZE_PATH, endpoint="authorize", methods=["GET"]),
        Rule(AUTHORIZE_PATH, endpoint="decide", methods=["POST"]),
        Rule(TOKEN_PATH, endpoint="token", methods=["POST"]),
        Rule(REVOKE_PATH, endpoint="revoke", methods=["POST"]),
    ]

    # The consent page ------------------------------------------------------------------

    def on_authorize(self, request):
        """Step 3 of the walkthrough, Google's way. Nothing is redirected until the client
        and its exact redirect URI are known."""
        args = request.args
        try:
            client = self.authorizing_client(args)
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
            access_type, prompt, include = self.googles_own(args)
            state = single(args, "state")
            nonce = single(args, "nonce")
        except OAuthError as error:
            raise AuthorizePageError(f"Error 400: {error.description}") from None

        consent = ConsentRequest(client, tuple(dict.fromkeys(scopes)), state, challenge, now())
        if "none" in prompt:
            # No page may be shown, and the user has not consented here before.
            return back_to_app(consent, error="interaction_required")
        request_id = secrets.token_urlsafe(32)
        self.store.consents.add(request_id, consent)
        extras = {
            "method": method,
            "offline": access_type == "offline",
            "forced": "consent" in prompt,
            "include": include,
            "nonce": nonce,  # echoed in the ID token
        }
        self.store.extras.keep(request_id, json.dumps(extras), now())
        return self.stand_in.render(
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

    def authorizing_client(self, args):
        client = self.store.clients.get(single(args, "client_id") or "")
        if client is None:
            raise AuthorizePageError("Error 401: invalid_client. The OAuth client was not found.")
        sent = single(args, "redirect_uri")
        if sent != client.redirect_uri:
            raise AuthorizePageError(
                f"Error 400: redirect_uri_mismatch. {sent or '(none)'} is not the "
                f"registered redirect URI, {client.redirect_uri}."
            )
        return client

    @staticmethod
    def googles_own(args):
        """access_type (online or offline), prompt (a set) and include_granted_scopes (a
        bool), Google's own parameters."""
        access_type = single(args, "access_type") or "online"
        if access_type not in ("online", "offline"):
            raise AuthorizePageError("Error 400: invalid_request. Bad access_type.")
        prompt = set((single(args, "prompt") or "").split())
        if not prompt <= {"none", "consent", "select_account"} or (
            "none" in prompt and len(prompt) > 1
        ):
            raise AuthorizePageError("Error 400: invalid_request. Bad prompt.")
        include = single(args, "include_granted_scopes") or "false"
        if include not in ("true", "false"):
            raise AuthorizePageError("Error 400: invalid_request. Bad include_granted_scopes.")
        return access_type, prompt, include == "true"

    def on_decide(self, request):
        request_id = request.form.get("request_id", "")
        extras = json.loads(self.store.extras.get(request_id) or "{}")
        consent = self.store.consents.take(request_id)
        if consent is None or now() > consent.created_at + CODE_LIFETIME:
            raise AuthorizePageError("This consent page has expired. Start again from the app.")
        user_id = request.form.get("user_id", "")
        if request.form.get("decision") != "allow" or user_id not in PEOPLE:
            return back_to_app(consent, error="access_denied")
        # Granular consent: openid always, the rest as ticked.
        ticked = set(request.form.getlist("scope")) | {"openid"}
        granted = [scope for scope in consent.scopes if scope in ticked]
        if not granted:
            return back_to_app(consent, error="access_denied")

        client_id = consent.client.client_id
        # Google sends a refresh token only when it asks the user to consent: the first
        # time, or every time with prompt=consent. This stand-in asks when it knows of no
        # live refresh token for the user.
        first = not self.store.grants.has_refresh_token(
            client_id, user_id, issued_after=now() - REFRESH_TOKEN_LIFETIME
        )
        refresh = extras.get("offline", False) and (extras.get("forced", False) or first)
        code = secrets.token_urlsafe(40)
        # Incremental authorization: with include_granted_scopes, the new scopes join the
        # grant the user already gave this app, and its tokens read them too.
        widened = extras.get("include") and self.store.grants.widened(client_id, user_id, granted)
        grant = widened or Grant(client_id, user_id, " ".join(granted))
        self.store.grants.add_code(
            code,
            AuthorizationCode(grant, consent.client.redirect_uri, consent.code_challenge, now()),
        )
        kept = {"method": extras.get("method"), "refresh": refresh, "nonce": extras.get("nonce")}
        self.store.extras.keep(code, json.dumps(kept), now())
        # Google's callback carries more than RFC 6749 asks for, and clients must take it.
        extra = {"authuser": "0", "prompt": "consent", "iss": request.url_root.rstrip("/")}
        return back_to_app(consent, code=code, scope=grant.scope, **extra)

    # The token endpoint ----------------------------------------------------------------

    def authenticate_client(self, request):
        """client_secret_basic or client_secret_post, but not both (RFC 6749 2.3)."""
        auth = request.headers.get("Authorization", "")
        in_form = "client_secret" in request.form
        if auth and in_form:
            raise OAuthError(400, "invalid_request", "Use one client authentication method.")
        if auth:
            client_id, secret = basic_credentials(auth)
        else:
            client_id = request.form.get("client_id", "")
            secret = request.form.get("client_secret", "")
        return self.registered_client(request.form, client_id, secret)

    def redeem_code(self, form, client):
        code = single(form, "code")
        redirect_uri = single(form, "redirect_uri")
        verifier = single(form, "code_verifier")
        if not code or not redirect_uri:
            raise OAuthError(400, "invalid_request", "Missing code or redirect_uri.")
        extras = json.loads(self.store.extras.get(code) or "{}")
        issued, _ = self.store.grants.redeem_code(code)  # single use; a replay revokes its tokens
        if issued is None or now() > issued.issued_at + CODE_LIFETIME:
            raise OAuthError(400, "invalid_grant", "Malformed auth code.")
        if issued.grant.client_id != client.client_id:
            raise OAuthError(400, "invalid_grant", "The code was issued to another client.")
        if redirect_uri != issued.redirect_uri:
            raise OAuthError(400, "redirect_uri_mismatch", "Bad Request")
        if issued.code_challenge:
            if not verifier or not PKCE_VERIFIER.fullmatch(verifier):
                raise OAuthError(400, "invalid_grant", "Missing code verifier.")
            derived = s256(verifier) if extras.get("method") == "S256" else verifier
            if not same(derived, issued.code_challenge):
                raise OAuthError(400, "invalid_grant", "Invalid code verifier.")
        return issued.grant, extras.get("refresh", False), extras.get("nonce")

    def redeem_refresh_token(self, form, client):
        token = single(form, "refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "Missing required parameter: refresh_token")
        grant = self.store.grants.refresh_grant(
            token, client.client_id, issued_after=now() - REFRESH_TOKEN_LIFETIME
        )
        if grant is None:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        return grant, False, None  # the same refresh token goes on working; no nonce

    def issue_tokens(self, request, grant, with_refresh, nonce):
        access = "ya29." + secrets.token_urlsafe(48)
        refresh = "1//" + secrets.token_urlsafe(48) if with_refresh else None
        expires_at = now() + timedelta(seconds=self.stand_in.expires_in)
        self.store.grants.add_tokens(grant, access, refresh, expires_at)
        body = {
            "access_token": access,
            "expires_in": self.stand_in.expires_in,
            "scope": grant.scope,
            "token_type": "Bearer",
        }
        if refresh:
            body["refresh_token"] = refresh
        if "openid" in grant.scope.split():
            body["id_token"] = self.id_token(request, grant, PEOPLE[grant.user_id], access, nonce)
        return body

    def on_revoke(self, request):
        """No client authentication; the token in the form or the query. A dead or unknown
        token is a 400 invalid_token. Revoking any token ends the app's access to the
        account, every grant the user gave it with every token of them: the app leaves the
        account's list of connected apps."""
        token = request.form.get("token") or request.args.get("token")
        grant = self.store.grants.grant_of(token) if token else None
        if grant is None:
            raise OAuthError(400, "invalid_token", "Token expired or revoked")
        self.store.grants.forget_user(grant.client_id, grant.user_id)
        return as_json({})
