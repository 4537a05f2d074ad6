"""The client side of OAuth 2.0's authorization code flow, written out by hand: the steps
that Fitbit's legacy Web API and the Google Health API share.

What one provider does its own way (endpoints and scopes, extra authorize parameters, who the
user is, error shapes, where the data lives) is in its dialect module, `fitbit_legacy.py` or
`google_health.py`, whose interface is written down in `dialects.py`; a `Client` names its
dialect. Nothing here knows about the web framework or the database: functions take explicit
arguments and return plain data, and every failure is a `ProviderError`. Read it in order;
each step names the RFC section it follows.

The steps are numbered as in docs/walkthrough.md, which tells the ones in between:

    Step 2  authorize_url()   send the browser to the consent page (RFC 6749 4.1.1, RFC 7636),
                              and again, for one scope more, at step 10
    Step 4  exchange_code()   swap the code from the callback for tokens (RFC 6749 4.1.3)
    Step 7  api_call()        call the API with the access token (RFC 6750)
    Step 8  ApiClient.call()  the same, refreshing the tokens when due (RFC 6749 6)
    Step 9  revoke()          let the user disconnect (RFC 7009)

After the steps: how every request is sent, and the errors.
"""

import base64
import contextvars
import hashlib
import logging
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Protocol
from urllib.parse import urlencode, urlsplit

import requests

log = logging.getLogger("oauth")

# requests waits forever unless told otherwise: (connect, read) seconds.
TIMEOUT = (5, 20)
# Refresh a few minutes early, so a token never expires between our check and the provider's.
REFRESH_LEEWAY = timedelta(minutes=5)
# One worker refreshes while the others wait: the lease outlasts a token POST that runs
# into TIMEOUT, and the others re-read the row every LEASE_POLL_SECONDS for up to
# LEASE_POLLS times (about 10 s) before answering "try again in a moment".
REFRESH_LEASE = timedelta(seconds=30)
LEASE_POLL_SECONDS = 0.05
LEASE_POLLS = 200
# Access tokens live 8 hours at Fitbit and 1 at Google; over a year is a broken answer.
MAX_EXPIRES_IN = 366 * 86400


# --- The app's registration ------------------------------------------------------------


ENDPOINTS = ("authorize_url", "token_url", "revoke_url", "api_url", "userinfo_url", "jwks_url")


@dataclass(frozen=True)
class Client:
    """The app's registration at one provider, and the endpoints it talks to. `dialect` is
    the provider's module (fitbit_legacy or google_health); an endpoint or the scopes left
    empty are the dialect's own."""

    dialect: ModuleType
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scopes: str = ""
    authorize_url: str = ""
    token_url: str = ""
    revoke_url: str = ""
    api_url: str = ""
    userinfo_url: str = ""
    jwks_url: str = ""  # OpenID Connect's keys; "" to find them by discovery (id_tokens.py)
    issuer: str = ""  # not a URL to call: the name the callback's `iss` must carry

    def __post_init__(self):
        for name in ("scopes", "issuer", *ENDPOINTS):
            if not getattr(self, name):
                object.__setattr__(self, name, getattr(self.dialect, name.upper()))

    @property
    def who(self):
        return self.dialect.NAME

    def basic_auth(self):
        # Both providers take HTTP Basic client authentication (RFC 6749 2.3.1); the secret
        # never goes in the form body.
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


# --- Step 2: the authorization request -------------------------------------------------


def new_state():
    """An unguessable value that ties the callback to the browser that started the flow
    (RFC 6749 10.12): 32 random bytes, 256 bits."""
    return secrets.token_urlsafe(32)


def new_code_verifier():
    """PKCE verifier (RFC 7636 4.1): 43 characters from the unreserved set."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier):
    """S256 challenge (RFC 7636 4.2): base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_nonce():
    """OpenID Connect's nonce (Core 3.1.2.1): sent with the authorization request, echoed in
    the ID token, so that a token minted for another sign-in is refused."""
    return secrets.token_urlsafe(32)


def authorize_url(client, state, verifier, holds_refresh_token=False, scope=None, nonce=None):
    """Where to send the browser. Both providers would assume `plain` PKCE without
    `code_challenge_method`, so S256 is always sent. The dialect adds its own parameters:
    Google's need to know whether the app already holds a refresh token for this user.

    With `scope`, this is a consent round for more than the sign-in asked for (step 10):
    the same request, with the dialect's scope for it and its own parameters for it. A
    dialect that speaks OpenID Connect sends the `nonce`."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": scope or client.scopes,
            "state": state,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
            **client.dialect.authorize_parameters(holds_refresh_token, scope is not None, nonce),
        }
    )
    return f"{client.authorize_url}?{query}"


# --- Step 4: the token request ---------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    """One token response. The secrets are left out of repr(), so logs and tracebacks
    that print this object cannot leak them."""

    # Fitbit names the user in its token answer; Google does not (its dialect asks the
    # Health API who the user is), so there this is None.
    user_id: str | None
    access_token: str = field(repr=False)
    # Google sends one only on the first consent, or a forced one: then None.
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    scope: str
    # OpenID Connect's signed word on who signed in (Google's, with `openid`), unchecked
    # here: id_tokens.py checks it before it is believed.
    id_token: str | None = field(default=None, repr=False)

    def expires_soon(self):
        return datetime.now(UTC) >= self.expires_at - REFRESH_LEEWAY


def exchange_code(client, code, verifier):
    """Swap the authorization code for tokens (RFC 6749 4.1.3, with the PKCE verifier)."""
    response = _post_token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
            **client.dialect.code_exchange_parameters(client),
        },
    )
    return parse_token_response(client, response, requested_scope=client.scopes)


def _post_token_request(client, form):
    # Never retried here: codes and refresh tokens are single-use, so a second POST
    # after a lost answer could only fail, or worse, burn the tokens the first one got.
    return _send(
        client,
        "POST",
        client.token_url,
        headers={"Authorization": client.basic_auth(), "Accept": "application/json"},
        data=form,
    )


def parse_token_response(client, response, requested_scope, previous_refresh_token=None):
    """Check every field of a token response before anything is stored. The body is
    untrusted input: a proxy's HTML page or a half-broken answer must not become a user."""
    if response.status_code != 200:
        raise client.dialect.error_from_response(response)

    def bad(problem):
        return BadResponse(problem, who=client.who)

    try:
        body = response.json()
    except ValueError:
        raise bad("not JSON") from None
    if not isinstance(body, dict):
        raise bad("not a JSON object")

    # RFC 6749 6: a refresh answer without a new refresh token keeps the old one.
    if body.get("refresh_token") is None:
        body["refresh_token"] = previous_refresh_token
    # Fitbit's answer always has all three; Google's has no user_id, and a refresh token
    # only after a consent. Whatever is there must be a real value.
    for name in ("access_token", "refresh_token", "user_id"):
        value = body.get(name)
        if value is None and name not in client.dialect.TOKEN_FIELDS:
            continue
        if not isinstance(value, str) or not value:
            raise bad(f"{name} missing")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise bad("token_type is not Bearer")
    expires_in = body.get("expires_in")
    # bool is a subclass of int in Python; `true` is not a lifetime.
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise bad("expires_in is not a number")
    # A chained comparison is also false for NaN, which Python's json accepts.
    if not 0 < expires_in <= MAX_EXPIRES_IN:
        raise bad("expires_in is out of range")
    scope = body.get("scope", requested_scope)  # RFC 6749 5.1: absent means as requested
    if not isinstance(scope, str):
        raise bad("scope is not a string")
    id_token = body.get("id_token")
    if id_token is not None and (not isinstance(id_token, str) or not id_token.isascii()):
        raise bad("id_token is not a JWT")

    return Tokens(
        user_id=body.get("user_id"),
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        scope=scope,
        id_token=id_token,
    )


# --- Step 7: API calls -----------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """One call to a provider's API, as its dialect describes it. `key` names the answer in
    the app's cache: the URL's path, different for each provider."""

    method: str
    url: str
    json: dict | None = None
    headers: dict | None = None  # beside the Bearer token

    @property
    def key(self):
        return urlsplit(self.url).path


def api_call(client, request, access_token):
    """One API call with a Bearer token (RFC 6750 2.1); returns (JSON body, headers). A
    201 (created) is a success too, and a 204 has an empty body."""
    response = _send(
        client,
        request.method,
        request.url,
        headers={**(request.headers or {}), "Authorization": f"Bearer {access_token}"},
        json=request.json,
    )
    if response.status_code not in (200, 201, 204):
        raise client.dialect.error_from_response(response)
    if response.status_code == 204:
        return {}, response.headers
    body = json_body(response)
    if body is None:
        raise BadResponse("not a JSON object", who=client.who)
    return body, response.headers


def json_body(response):
    """The JSON object of an answer, or None when there is none (an HTML error page)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


# --- Step 8: tokens that stay fresh ----------------------------------------------------


def refresh(client, tokens):
    """Trade a refresh token for new tokens (RFC 6749 6). Fitbit's refresh tokens work once
    and each answer brings the next; Google's are kept and reused, and its answer usually
    has none. Either way the caller stores the answer before doing anything else with it."""
    response = _post_token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    new = parse_token_response(
        client,
        response,
        requested_scope=tokens.scope,
        previous_refresh_token=tokens.refresh_token,
    )
    if new.user_id is not None and new.user_id != tokens.user_id:
        # Tokens for somebody else must never be filed under this user.
        raise BadResponse("user_id changed on refresh", who=client.who)
    return new


class TokenStore(Protocol):
    """Where the users' tokens live, each user's under a key of the store's choosing.
    `token_store.py` backs this with the users table, which every process and worker
    of the app shares."""

    def load(self, key) -> Tokens | None: ...

    def take_lease(self, key, tokens: Tokens, until: datetime) -> str | None:
        """Claim the right to refresh `tokens` until `until`, or None when the stored access
        token has changed (somebody refreshed) or somebody else holds an unexpired lease."""

    def release(self, key, lease: str) -> None:
        """Give back a lease whose refresh failed, so the next request may try again."""

    def replace(self, key, old: Tokens, new: Tokens) -> bool:
        """Store `new` only if the stored access token is still `old`'s (compare and swap),
        ending the lease."""

    def forget(self, key, dead: Tokens) -> bool:
        """Clear the tokens only if the stored refresh token is still `dead`'s."""


class RefreshBusy(Exception):
    """Another worker holds the refresh lease and has not finished: try again shortly."""


class ApiClient:
    """API calls on behalf of one user, refreshing the tokens when they are due."""

    def __init__(self, client, store, user_key, name=None):
        self.client = client
        self.store = store
        self.user_key = user_key
        self.name = name or f"user {user_key}"  # how the log names the user

    def call(self, request):
        """Make an ApiRequest; returns (JSON body, response headers)."""
        tokens = self.store.load(self.user_key)
        if tokens is None:
            raise ReconnectNeeded(who=self.client.who)
        if tokens.expires_soon():
            tokens = self.refresh(tokens)
        try:
            return api_call(self.client, request, tokens.access_token)
        except TokenRejected:
            # Our clock and the provider's disagree, or the grant was revoked on the
            # provider's site: then the refresh fails with invalid_grant and the user is
            # asked to connect again. Either way: refresh once, retry once.
            return api_call(self.client, request, self.refresh(tokens).access_token)

    def refresh(self, stale):
        """Refresh `stale` tokens, with exactly one refresh per expiry across every thread
        and process that shares the database.

        Fitbit's refresh tokens work once: two refreshes racing with the same one would end
        the user's authorization. Google's can be reused, but one POST per expiry is still
        the polite number. So whoever wants to refresh first takes a short lease on the
        user's row, in one conditional UPDATE of its own. The one who gets it spends the
        refresh token; the others wait a moment, re-read the row and use the new access
        token. No transaction is held open while the provider thinks.
        """
        for _ in range(LEASE_POLLS):
            current = self.store.load(self.user_key)
            if current is None:
                raise ReconnectNeeded(who=self.client.who)
            # The access token, not the refresh token: Google's refresh token stays the same.
            if current.access_token != stale.access_token:
                return current  # another worker refreshed while we waited
            # Taking the lease is a write: if the database cannot take one now, we stop
            # here, before spending a refresh token whose successor could not be stored.
            lease = self.store.take_lease(self.user_key, current, datetime.now(UTC) + REFRESH_LEASE)
            if lease is not None:
                return self._refresh_holding(current, lease)
            time.sleep(LEASE_POLL_SECONDS)
        # The holder is slow, or died holding the lease: it runs out after REFRESH_LEASE.
        log.warning("%s: another worker is still refreshing", self.name)
        raise RefreshBusy()

    def _refresh_holding(self, current, lease):
        try:
            new = refresh(self.client, current)
        except ProviderError as error:
            if error.error_type != "invalid_grant":
                self.store.release(self.user_key, lease)
                raise
            # The grant is dead (revoked, or expired). Clearing is conditional on this very
            # refresh token, so a pair that someone else stored meanwhile is never wiped.
            if self.store.forget(self.user_key, current):
                log.warning("%s: refresh token refused, must connect again", self.name)
                raise ReconnectNeeded(who=self.client.who) from None
            return self._reload()
        if not self.store.replace(self.user_key, current, new):
            # The row changed under us (a disconnect, or a new sign-in): trust the row.
            kept = self.store.load(self.user_key)
            if kept is None:
                # Disconnected (or deleted) while the provider answered: nobody here holds
                # the pair it just gave, so it is handed back rather than left live there.
                self._hand_back(new)
                raise ReconnectNeeded(who=self.client.who)
            return kept
        log.info("%s: tokens refreshed", self.name)
        return new

    def _hand_back(self, orphan):
        try:
            revoke(self.client, orphan.refresh_token or orphan.access_token)
            log.info("%s: disconnected during a refresh; its new tokens revoked", self.name)
        except ProviderError as error:
            log.warning(
                "%s: the tokens of a refresh nobody holds were not revoked: %s", self.name, error
            )

    def _reload(self):
        tokens = self.store.load(self.user_key)
        if tokens is None:
            raise ReconnectNeeded(who=self.client.who)
        return tokens


# --- Step 9: revoke --------------------------------------------------------------------


def revoke(client, token):
    """Revoke the user's grant (RFC 7009): the provider drops that grant's tokens. Fitbit
    wants the client's credentials; Google wants none."""
    headers = {"Authorization": client.basic_auth()} if client.dialect.REVOKE_WITH_AUTH else {}
    response = _send(client, "POST", client.revoke_url, headers=headers, data={"token": token})
    if not client.dialect.revoked(response):
        raise client.dialect.error_from_response(response)


# --- Talking to the provider -----------------------------------------------------------


# Who wants to hear of each exchange (the app's trace page): a function, or None.
_observer = contextvars.ContextVar("observer", default=None)


@contextmanager
def observed(observer):
    """Within this block, `observer(method, url, headers, form, json, response)` is told of
    each request sent to the provider (its form or its JSON body, the other None), with
    response None when the provider never answered."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def _send(client, method, url, **kwargs):
    """Every outbound request goes through here: always a timeout, never a redirect
    (a redirected POST could carry the code or credentials somewhere unexpected)."""
    observer, response = _observer.get(), None
    try:
        response = requests.request(method, url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        return response
    except requests.Timeout:
        raise ProviderUnreachable(504, "timeout", who=client.who) from None
    except requests.RequestException:
        raise ProviderUnreachable(502, "connection_error", who=client.who) from None
    finally:
        if observer is not None:
            form, body = kwargs.get("data"), kwargs.get("json")
            observer(method, url, kwargs.get("headers"), form, body, response)


# --- Errors ----------------------------------------------------------------------------


class ProviderError(Exception):
    """The provider said no. `error_type` is its own name for the error: Fitbit's
    `errors[0].errorType`, RFC 6749's `error`, or Google's `error.status`. `who` names the
    provider in the text.

    The text never includes the provider's own message: Fitbit's for `expired_token`
    repeats the access token itself.
    """

    # For a sign-in it ends: whether the new tokens were handed back (sign_ins.py).
    given_back = True

    def __init__(self, status, error_type, detail="", who="the provider"):
        self.status = status
        self.error_type = error_type
        self.who = who
        super().__init__(self.describe(detail))

    def describe(self, detail):
        return f"{self.who} answered {self.status} {self.error_type}{detail}"


class ProviderUnavailable(ProviderError):
    """A 5xx, a timeout or a refused connection: the provider's trouble, not the user's."""


class ProviderUnreachable(ProviderUnavailable):
    """The provider never answered: the connection failed or timed out."""

    def describe(self, detail):
        return f"could not reach {self.who} ({self.error_type})"


class ApiRetired(ProviderError):
    """410 Gone: Fitbit shut down the legacy Web API in late 2026."""


class TokenRejected(ProviderError):
    """401 for the access token (expired early, or revoked): refresh once, retry once."""


class UntrustedAnswer(ProviderError):
    """An answer that failed a check of its authenticity: an ID token (id_tokens.py) whose
    signature or claims do not hold. `error_type` names the check, for the log."""

    def __init__(self, check, who="the provider"):
        super().__init__(200, "untrusted_id_token", f": the {check} check failed", who=who)
        self.check = check


class RevokedAtOnce(ProviderError):
    """A sign-in's new tokens, refused on their first use: the provider revoked them as soon
    as it issued them, as it must when the same authorization code is redeemed twice (RFC
    6749 4.1.2). Somebody else had the code: the sign-in cannot be trusted."""


class ScopeMissing(ProviderError):
    """403: the user did not grant the scope this call needs."""


class NotAllowed(ProviderError):
    """403 for what the provider keeps from this app whatever the user grants, such as
    Fitbit's intraday data for an app it has not approved."""


class Unidentified(ProviderError):
    """The provider cannot say who the user is with what was granted: nobody to sign in."""


class RateLimited(ProviderError):
    """429: the user's budget of calls is spent. `reset_at` says when it comes back."""

    def __init__(self, status, error_type, reset_at, who="the provider"):
        self.reset_at = reset_at
        super().__init__(status, error_type, who=who)


class BadResponse(ProviderError):
    """An answer of 200 with something unusable: not JSON, or fields missing or wrong."""

    def __init__(self, problem, who="the provider"):
        super().__init__(200, "bad_response", f": {problem}", who=who)


class ReconnectNeeded(ProviderError):
    """The stored tokens are gone or dead (revoked at the provider): sign in again."""

    def __init__(self, who="the provider"):
        super().__init__(400, "invalid_grant", ": the user must connect again", who=who)
