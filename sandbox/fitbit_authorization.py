"""Fitbit's authorization server: the consent page, the token endpoint and revocation.

GET  /oauth2/authorize   the consent page (RFC 6749 4.1.1, PKCE RFC 7636)
POST /oauth2/authorize   the user's Allow or Deny
POST /oauth2/token       codes and refresh tokens for tokens (RFC 6749 4.1.3, 6)
POST /oauth2/revoke      end a user's grant (RFC 7009)
"""

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
from .fitbit_resources import DEMO_USERS
from .store import AuthorizationCode, ConsentRequest, Grant

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


class FitbitAuthorizationServer(AuthorizationServer):
    TOKEN_HEADERS = {"Cache-Control": "no-store"}
    BAD_CREDENTIALS = "Invalid authorization header."
    OTHER_CLIENT_ID = "client_id does not match the header."
    RULES = [
        Rule("/oauth2/authorize", endpoint="authorize", methods=["GET"]),
        Rule("/oauth2/authorize", endpoint="decide", methods=["POST"]),
        Rule("/oauth2/token", endpoint="token", methods=["POST"]),
        Rule("/oauth2/revoke", endpoint="revoke", methods=["POST"]),
    ]

    # The consent page ------------------------------------------------------------------

    def on_authorize(self, request):
        """Step 3 of the walkthrough. Check the request before showing anything. A bad
        client or redirect_uri must never lead to a redirect: that would make this an open
        redirector."""
        args = request.args
        try:
            client = self.store.clients.get(single(args, "client_id") or "")
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
            if method and not S256_CHALLENGE.fullmatch(challenge):
                raise AuthorizePageError("code_challenge is missing or malformed.")
            state = single(args, "state")
        except OAuthError as error:
            raise AuthorizePageError(error.description) from None

        consent = ConsentRequest(client, tuple(dict.fromkeys(scopes)), state, challenge, now())
        return self.consent_page(consent)

    def consent_page(self, consent, problem=None):
        """The page that asks the user, under a new single-use request id."""
        request_id = secrets.token_urlsafe(32)
        self.store.consents.add(request_id, consent)
        return self.stand_in.render(
            "consent.html",
            client=consent.client,
            scopes={scope: SCOPES[scope] for scope in consent.scopes},
            always={},
            request_id=request_id,
            users=DEMO_USERS,
            problem=problem,
        )

    def on_decide(self, request):
        """Allow or Deny. The request id in the form is single-use and unguessable, which
        also makes it this form's CSRF token."""
        consent = self.store.consents.take(request.form.get("request_id", ""))
        if consent is None or now() > consent.created_at + CODE_LIFETIME:
            raise AuthorizePageError("This consent page has expired. Start again from the app.")

        user_id = request.form.get("user_id", "")
        granted = [scope for scope in consent.scopes if scope in request.form.getlist("scope")]
        if request.form.get("decision") != "allow" or user_id not in DEMO_USERS:
            return back_to_app(consent, error="access_denied")
        if not granted:
            # Allow with every box unticked allows nothing: asked again, not sent back as a
            # Deny the user never chose.
            return self.consent_page(consent, problem="Tick at least one, or click Deny.")

        code = secrets.token_hex(20)
        grant = Grant(consent.client.client_id, user_id, " ".join(granted))
        self.store.grants.add_code(
            code,
            AuthorizationCode(grant, consent.client.redirect_uri, consent.code_challenge, now()),
        )
        return back_to_app(consent, code=code)

    # The token endpoint ----------------------------------------------------------------

    def authenticate_client(self, request):
        """HTTP Basic only, as Fitbit does for Server apps; a secret in the body is refused."""
        if "client_secret" in request.form:
            raise OAuthError(401, "invalid_client", "Send the client secret with Basic auth.")
        client_id, secret = basic_credentials(request.headers.get("Authorization", ""))
        return self.registered_client(request.form, client_id, secret)

    def redeem_code(self, form, client):
        code = single(form, "code")
        redirect_uri = single(form, "redirect_uri")
        verifier = single(form, "code_verifier")
        if not code or not redirect_uri:
            raise OAuthError(400, "invalid_request", "code and redirect_uri are required.")
        # Single use, whatever happens next. RFC 6749 4.1.2: a code used twice also revokes
        # the tokens issued from it, in case the first use was an attacker's.
        issued, _ = self.store.grants.redeem_code(code)
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
            if not same(s256(verifier), issued.code_challenge):
                raise OAuthError(
                    400, "invalid_grant", "code_verifier does not match the challenge."
                )
        return (issued.grant,)

    def redeem_refresh_token(self, form, client):
        token = single(form, "refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "refresh_token is required.")
        # Single use: spending it rotates the pair, and the old one is dead at once.
        grant = self.store.grants.spend_refresh_token(token, client.client_id)
        if grant is None:
            raise OAuthError(400, "invalid_grant", "Refresh token invalid.")
        return (grant,)

    def issue_tokens(self, request, grant):
        expires_in = self.stand_in.expires_in
        access, refresh = secrets.token_urlsafe(32), secrets.token_hex(32)
        self.store.grants.add_tokens(grant, access, refresh, now() + timedelta(seconds=expires_in))
        return {
            "access_token": access,
            "expires_in": expires_in,
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
        grant = self.store.grants.grant_of(token)
        if grant is not None and grant.client_id == client.client_id:
            self.store.grants.forget_user(client.client_id, grant.user_id)
        return as_json({})
