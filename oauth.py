"""The client side of Fitbit's OAuth 2.0 authorization code flow, written out by hand.

Nothing here knows about the web framework or the database: functions take explicit
arguments and return plain data, and every failure is a `FitbitError` carrying Fitbit's
`errorType`. Read it in order; each step names the RFC section it follows.

    Step 1  authorize_url()   send the browser to Fitbit (RFC 6749 4.1.1, PKCE RFC 7636)
    Step 2  exchange_code()   swap the code from the callback for tokens (RFC 6749 4.1.3)
    Step 3  FitbitApi.get()   call the API, refreshing the tokens when due (RFC 6749 6)
            revoke()          let the user disconnect (RFC 7009)
"""

import base64
import contextvars
import hashlib
import logging
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from urllib.parse import urlencode

import requests

AUTHORIZE_URL = "https://www.fitbit.com/oauth2/authorize"
TOKEN_URL = "https://api.fitbit.com/oauth2/token"
REVOKE_URL = "https://api.fitbit.com/oauth2/revoke"
API_URL = "https://api.fitbit.com"
DEFAULT_SCOPES = "activity profile"

log = logging.getLogger("oauth")

# requests waits forever unless told otherwise: (connect, read) seconds.
TIMEOUT = (5, 20)
# Refresh a few minutes early, so a token never expires between our check and Fitbit's.
REFRESH_LEEWAY = timedelta(minutes=5)
# One worker refreshes while the others wait: the lease outlasts a token POST that runs
# into TIMEOUT, and the others re-read the row every LEASE_POLL_SECONDS for up to
# LEASE_POLLS times (about 10 s) before answering "try again in a moment".
REFRESH_LEASE = timedelta(seconds=30)
LEASE_POLL_SECONDS = 0.05
LEASE_POLLS = 200
# Fitbit's tokens live 8 hours; a lifetime over a year is a broken answer.
MAX_EXPIRES_IN = 366 * 86400
# Fitbit's budget is 150 calls an hour; figures beyond these are broken answers, kept capped.
MAX_RATE_BUDGET = 100_000
MAX_DAILY_STEPS = 1_000_000


# --- Errors ----------------------------------------------------------------------------


class FitbitError(Exception):
    """Fitbit said no. `error_type` is Fitbit's `errors[0].errorType`.

    The text never includes Fitbit's own `message`: for `expired_token` that message
    repeats the access token itself.
    """

    def __init__(self, status, error_type, detail=""):
        self.status = status
        self.error_type = error_type
        super().__init__(self.describe(detail))

    def describe(self, detail):
        return f"Fitbit answered {self.status} {self.error_type}{detail}"


class FitbitUnavailable(FitbitError):
    """A 5xx, a timeout or a refused connection: Fitbit's trouble, not the user's."""


class FitbitUnreachable(FitbitUnavailable):
    """Fitbit never answered: the connection failed or timed out."""

    def describe(self, detail):
        return f"could not reach Fitbit ({self.error_type})"


class FitbitRetired(FitbitError):
    """410 Gone: Fitbit shut down the legacy Web API in late 2026."""


class RateLimited(FitbitError):
    """429: the user's 150 calls an hour are spent. `reset_at` says when they come back."""

    def __init__(self, status, error_type, reset_at):
        self.reset_at = reset_at
        super().__init__(status, error_type)


class BadResponse(FitbitError):
    """Fitbit answered 200 with something unusable: not JSON, or fields missing or wrong."""

    def __init__(self, problem):
        super().__init__(200, "bad_response", f": {problem}")


class ReconnectNeeded(FitbitError):
    """The stored tokens are gone or dead (revoked at Fitbit): the user must sign in again."""

    def __init__(self):
        super().__init__(400, "invalid_grant", ": the user must connect again")


# --- Tokens ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    """One token response. The secrets are left out of repr(), so logs and tracebacks
    that print this object cannot leak them."""

    user_id: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    scope: str

    def expires_soon(self):
        return datetime.now(UTC) >= self.expires_at - REFRESH_LEEWAY


@dataclass(frozen=True)
class Client:
    """The app's registration at Fitbit and the endpoints it talks to."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str
    scopes: str = DEFAULT_SCOPES
    authorize_url: str = AUTHORIZE_URL
    token_url: str = TOKEN_URL
    revoke_url: str = REVOKE_URL
    api_url: str = API_URL

    def basic_auth(self):
        # Fitbit's confidential clients authenticate with HTTP Basic (RFC 6749 2.3.1);
        # the secret never goes in the form body.
        pair = f"{self.client_id}:{self.client_secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


# --- Step 1: the authorization request ---------------------------------------------------


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


def authorize_url(client, state, verifier):
    """Where to send the browser. Fitbit would assume `plain` PKCE without
    `code_challenge_method`, so S256 is always sent."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": client.scopes,
            "state": state,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    return f"{client.authorize_url}?{query}"


# --- Step 2: the token request -----------------------------------------------------------


def exchange_code(client, code, verifier):
    """Swap the authorization code for tokens (RFC 6749 4.1.3, with the PKCE verifier)."""
    response = _post_token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": verifier,
            "client_id": client.client_id,  # as in Fitbit's own examples; never the secret
        },
    )
    return parse_token_response(response, requested_scope=client.scopes)


def refresh(client, tokens):
    """Trade a refresh token for a new pair (RFC 6749 6). Fitbit's refresh tokens are
    single-use: the caller must store the answer before doing anything else with it."""
    response = _post_token_request(
        client, {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    new = parse_token_response(
        response, requested_scope=tokens.scope, previous_refresh_token=tokens.refresh_token
    )
    if new.user_id != tokens.user_id:
        # Tokens for somebody else must never be filed under this user.
        raise BadResponse("user_id changed on refresh")
    return new


def revoke(client, token):
    """Revoke the user's grant (RFC 7009). Fitbit drops all of that user's tokens."""
    response = _send(
        "POST",
        client.revoke_url,
        headers={"Authorization": client.basic_auth()},
        data={"token": token},
    )
    if response.status_code != 200:
        raise error_from_response(response)


def _post_token_request(client, form):
    # Never retried here: codes and refresh tokens are single-use, so a second POST
    # after a lost answer could only fail, or worse, burn the tokens the first one got.
    return _send(
        "POST",
        client.token_url,
        headers={"Authorization": client.basic_auth(), "Accept": "application/json"},
        data=form,
    )


def parse_token_response(response, requested_scope, previous_refresh_token=None):
    """Check every field of a token response before anything is stored. The body is
    untrusted input: a proxy's HTML page or a half-broken answer must not become a user."""
    if response.status_code != 200:
        raise error_from_response(response)
    try:
        body = response.json()
    except ValueError:
        raise BadResponse("not JSON") from None
    if not isinstance(body, dict):
        raise BadResponse("not a JSON object")

    # RFC 6749 6: a refresh answer without a new refresh token keeps the old one.
    body.setdefault("refresh_token", previous_refresh_token)
    for name in ("access_token", "refresh_token", "user_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise BadResponse(f"{name} missing")
    token_type = body.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise BadResponse("token_type is not Bearer")
    expires_in = body.get("expires_in")
    # bool is a subclass of int in Python; `true` is not a lifetime.
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        raise BadResponse("expires_in is not a number")
    # A chained comparison is also false for NaN, which Python's json accepts.
    if not 0 < expires_in <= MAX_EXPIRES_IN:
        raise BadResponse("expires_in is out of range")
    scope = body.get("scope", requested_scope)  # RFC 6749 5.1: absent means as requested
    if not isinstance(scope, str):
        raise BadResponse("scope is not a string")

    return Tokens(
        user_id=body["user_id"],
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
        scope=scope,
    )


# --- Talking to Fitbit -------------------------------------------------------------------


# Who wants to hear of each exchange (the app's trace page): a function, or None.
_observer = contextvars.ContextVar("observer", default=None)


@contextmanager
def observed(observer):
    """Within this block, `observer(method, url, headers, form, response)` is told of each
    request sent to Fitbit, with response None when Fitbit never answered."""
    token = _observer.set(observer)
    try:
        yield
    finally:
        _observer.reset(token)


def _send(method, url, **kwargs):
    """Every outbound request goes through here: always a timeout, never a redirect
    (a redirected POST could carry the code or credentials somewhere unexpected)."""
    observer, response = _observer.get(), None
    try:
        response = requests.request(method, url, timeout=TIMEOUT, allow_redirects=False, **kwargs)
        return response
    except requests.Timeout:
        raise FitbitUnreachable(504, "timeout") from None
    except requests.RequestException:
        raise FitbitUnreachable(502, "connection_error") from None
    finally:
        if observer is not None:
            observer(method, url, kwargs.get("headers"), kwargs.get("data"), response)


def error_from_response(response):
    """Turn a Fitbit error answer into an exception. Fitbit's shape is
    {"errors": [{"errorType": ..., "message": ...}], "success": false}."""
    status = response.status_code
    error_type = "unknown"
    try:
        errors = response.json().get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0].get("errorType"), str):
            error_type = errors[0]["errorType"][:64]
    except (ValueError, AttributeError):
        pass

    if status == 410:
        return FitbitRetired(status, error_type)
    if status == 429:
        return RateLimited(status, error_type, _rate_limit_reset(response))
    if status >= 500:
        return FitbitUnavailable(status, error_type)
    return FitbitError(status, error_type)


def _rate_limit_reset(response):
    # Without Fitbit-Rate-Limit-Reset, the budget refills at the top of the hour.
    _, reset_at = rate_budget(response.headers)
    now = datetime.now(UTC)
    return reset_at or now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def rate_budget(headers):
    """(calls left this hour, when the budget refills) from Fitbit-Rate-Limit-* headers,
    each None when absent. Fitbit-Rate-Limit-Reset counts seconds; Retry-After has been
    reported wrong, so it is not used."""

    def number(name, cap):
        # Untrusted figures, capped before they are kept: twenty digits would not even fit
        # in the database's integer column.
        value = headers.get(name, "")
        if not (value.isascii() and value.isdigit()):
            return None
        return cap if len(value) > len(str(cap)) else min(int(value), cap)

    remaining = number("Fitbit-Rate-Limit-Remaining", MAX_RATE_BUDGET)
    # The budget refills every hour: a larger figure is an error, not a reason to wait.
    reset = number("Fitbit-Rate-Limit-Reset", 3600)
    if reset is None:
        return remaining, None
    return remaining, datetime.now(UTC) + timedelta(seconds=reset)


# --- Step 3: API calls with tokens that stay fresh ----------------------------------------


def api_get(client, path, access_token):
    """One GET with a Bearer token; returns (JSON body, response headers)."""
    response = _send(
        "GET", client.api_url + path, headers={"Authorization": f"Bearer {access_token}"}
    )
    if response.status_code != 200:
        raise error_from_response(response)
    try:
        return response.json(), response.headers
    except ValueError:
        raise BadResponse("not JSON") from None


def _profile_user(profile):
    user = profile.get("user") if isinstance(profile, dict) else None
    if not isinstance(user, dict):
        raise BadResponse("profile has no user")
    return user


def display_name(profile):
    """The name to greet the user by, from /1/user/-/profile.json."""
    user = _profile_user(profile)
    for key in ("displayName", "fullName"):
        if isinstance(user.get(key), str) and user[key].strip():
            return user[key].strip()
    return "Fitbit user"


def profile_details(profile):
    """Avatar URL (or None) and member-since date (or None) from a profile answer."""
    user = _profile_user(profile)
    avatar = user.get("avatar150") or user.get("avatar")
    if not isinstance(avatar, str) or not avatar.startswith(("https://", "http://")):
        avatar = None  # only web addresses become an <img src>
    try:
        member_since = date.fromisoformat(user.get("memberSince"))
    except (TypeError, ValueError):
        member_since = None
    return avatar, member_since


def step_series(body):
    """[(date, steps), ...] from an activities/steps answer. Fitbit sends each value as a
    string ("8123"), but nothing promises it always will: numbers are taken too."""
    series = body.get("activities-steps") if isinstance(body, dict) else None
    if not isinstance(series, list):
        raise BadResponse("no activities-steps")
    days = []
    for entry in series:
        try:
            value = entry["value"]
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise ValueError(value)
            steps = int(float(value))
            if steps < 0:
                raise ValueError(value)
            days.append((date.fromisoformat(entry["dateTime"]), min(steps, MAX_DAILY_STEPS)))
        except (TypeError, KeyError, ValueError, OverflowError):
            raise BadResponse("unreadable step count") from None
    return days


class TokenStore(Protocol):
    """Where the user's tokens live. `fitbit_oauth_app.py` backs this with the users table,
    which every process and worker of the app shares."""

    def load(self, user_id: str) -> Tokens | None: ...

    def take_lease(self, tokens: Tokens, until: datetime) -> str | None:
        """Claim the right to spend `tokens.refresh_token` until `until`, or None when the
        stored refresh token has changed or somebody else holds an unexpired lease."""

    def release(self, tokens: Tokens, lease: str) -> None:
        """Give back a lease whose refresh failed, so the next request may try again."""

    def replace(self, old: Tokens, new: Tokens) -> bool:
        """Store `new` only if the stored refresh token is still `old`'s (compare and swap),
        ending the lease."""

    def forget(self, dead: Tokens) -> bool:
        """Clear the tokens only if the stored refresh token is still `dead`'s."""


class RefreshBusy(Exception):
    """Another worker holds the refresh lease and has not finished: try again shortly."""


class FitbitApi:
    """Fitbit API calls on behalf of one user, refreshing the tokens when they are due."""

    def __init__(self, client, store, user_id):
        self.client = client
        self.store = store
        self.user_id = user_id

    def get(self, path):
        """GET an API path; returns (JSON body, response headers)."""
        tokens = self.store.load(self.user_id)
        if tokens is None:
            raise ReconnectNeeded()
        if tokens.expires_soon():
            tokens = self.refresh(tokens)
        try:
            return self._get(path, tokens)
        except FitbitError as error:
            if error.status != 401 or error.error_type not in ("expired_token", "invalid_token"):
                raise
        # expired_token: our clock and Fitbit's disagree. invalid_token: the grant may have
        # been revoked at fitbit.com, and then the refresh fails with invalid_grant and the
        # user is asked to connect again. Either way: refresh once, retry once.
        return self._get(path, self.refresh(tokens))

    def _get(self, path, tokens):
        return api_get(self.client, path, tokens.access_token)

    def refresh(self, stale):
        """Refresh `stale` tokens, with exactly one refresh per expiry across every thread
        and process that shares the database.

        Fitbit's refresh tokens work once: two refreshes racing with the same one would end
        the user's authorization. So whoever wants to refresh first takes a short lease on
        the user's row, in one conditional UPDATE of its own. The one who gets it spends the
        refresh token; the others wait a moment, re-read the row and use the new pair.
        No transaction is held open while Fitbit thinks, so nobody else waits on us.
        """
        for _ in range(LEASE_POLLS):
            current = self.store.load(self.user_id)
            if current is None:
                raise ReconnectNeeded()
            if current.refresh_token != stale.refresh_token:
                return current  # another worker refreshed while we waited
            # Taking the lease is a write: if the database cannot take one now, we stop
            # here, before spending a refresh token whose successor could not be stored.
            lease = self.store.take_lease(current, datetime.now(UTC) + REFRESH_LEASE)
            if lease is not None:
                return self._refresh_holding(current, lease)
            time.sleep(LEASE_POLL_SECONDS)
        # The holder is slow, or died holding the lease: it runs out after REFRESH_LEASE.
        log.warning("Fitbit user %s: another worker is still refreshing", self.user_id)
        raise RefreshBusy()

    def _refresh_holding(self, current, lease):
        try:
            new = refresh(self.client, current)
        except FitbitError as error:
            if error.error_type != "invalid_grant":
                self.store.release(current, lease)
                raise
            # The grant is dead (revoked at Fitbit). Clearing is conditional on this very
            # refresh token, so a pair that someone else stored meanwhile is never wiped.
            if self.store.forget(current):
                log.warning(
                    "Fitbit user %s: refresh token refused, must connect again", self.user_id
                )
                raise ReconnectNeeded() from None
            return self._reload()
        if not self.store.replace(current, new):
            # The row changed under us (a disconnect, or a new sign-in): trust the row.
            return self._reload()
        log.info("Fitbit user %s: tokens refreshed", self.user_id)
        return new

    def _reload(self):
        tokens = self.store.load(self.user_id)
        if tokens is None:
            raise ReconnectNeeded()
        return tokens
