"""Browser sessions: the cookie, the session it names, CSRF tokens and flash messages.

The cookie holds only a random id; the database keeps a keyed hash of it
(models.BrowserSession), so a copy of the database signs nobody in. The id changes at
sign-in, every POST carries the session's CSRF token, and flash messages wait in the
session for the next page.
"""

import hmac
import secrets
from hashlib import sha256
from urllib.parse import urlsplit

from werkzeug.exceptions import Forbidden, TooManyRequests
from werkzeug.http import parse_cookie

from models import SESSION_LIFETIME, SIGN_IN_LIFETIME, BrowserSession, PendingSignIn, db, prune

SESSION_COOKIE = "session"
# Names a browser may use for this machine while developing.
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
# Sign-ins in flight from one address (each holds a session and a pending sign-in for
# ten minutes); each one started also deletes up to PRUNE_BATCH unusable rows of each kind.
MAX_SIGN_INS_PER_ADDRESS = 20
PRUNE_BATCH = 20


def same_secret(given, expected):
    """Constant-time comparison. compare_digest raises on None and on non-ASCII str,
    so both sides become bytes after the presence check."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class Sessions:
    """Each request's BrowserSession (request.browser), and the cookie that names it
    (request.new_cookie, set on the response by set_cookie)."""

    def __init__(self, secret_key):
        self.secret_key = secret_key

    def keyed_hash(self, text):
        return hmac.new(self.secret_key, text.encode(), sha256).hexdigest()

    def load(self, request):
        request.browser = self.find(request.environ)

    def find(self, environ):
        """The session that the cookie of this WSGI environ names, if it is still one."""
        key = self.key_in(environ)
        return None if key is None else BrowserSession.find(key)

    def key_in(self, environ):
        """The keyed hash of the session id in this WSGI environ's cookie, if it has one that
        could be a session id; found without the database."""
        # The Cookie header, read where the WSGI server put it: request.cookies finds it by
        # walking every header of the request, which costs more than parsing it does.
        header = environ.get("HTTP_COOKIE")
        if not header:
            return None  # a first visit: no cookies to parse
        raw = parse_cookie(header).get(SESSION_COOKIE, "")
        if raw and len(raw) <= 64 and raw.isascii():
            return self.keyed_hash(raw)
        return None

    def ensure(self, request):
        """This browser's session, made on first need (a sign-in or a flash message)."""
        if request.browser is None:
            self.start(request)
        return request.browser

    def start(self, request, user=None, carry_flashes=False):
        """A brand-new session id; the old session, if any, is deleted."""
        flashes, trace = "[]", None
        if request.browser is not None:
            if carry_flashes:  # signing in: the flashes and the trace go to the new session
                flashes, trace = request.browser.flashes, request.browser.trace
            request.browser.delete_instance()
        raw = secrets.token_urlsafe(32)
        request.browser = BrowserSession.create(
            key=self.keyed_hash(raw),
            csrf_token=secrets.token_urlsafe(32),
            user=user,
            flashes=flashes,
            trace=trace,
        )
        request.new_cookie = raw

    def set_cookie(self, request, response):
        if request.new_cookie is not None:
            response.set_cookie(
                SESSION_COOKIE,
                request.new_cookie,
                max_age=int(SESSION_LIFETIME.total_seconds()),
                path="/",
                secure=request.is_secure,
                httponly=True,
                samesite="Lax",  # Strict would drop the cookie on the way back from the provider
            )
        return response

    def check_csrf(self, request):
        """Every POST carries the token from the page's own form (docs/security.md item 26)."""
        expected = request.browser.csrf_token if request.browser else None
        if not same_secret(request.form.get("csrf_token"), expected):
            raise Forbidden(
                "This form has expired or did not come from this site. Reload the page."
            )

    @staticmethod
    def clear_some():
        """Every start adds rows, so every start clears some: up to PRUNE_BATCH unusable rows
        of each kind, in a transaction of its own. Inside the one that adds the sign-in, a
        start refused for its address's cap would roll the clearing back, and a storm from
        one address would leave everything it found."""
        with db.atomic():
            prune(most=PRUNE_BATCH)

    def admit_sign_in(self, request):
        """The keyed hash of the address a new sign-in comes from, unless it has too many in
        flight: one address can only have so many, so a script without cookies cannot fill
        the disk. Called in the transaction that adds the sign-in, which holds the address's
        lock from here on."""
        address = self.keyed_hash(f"address:{request.remote_addr}")
        PendingSignIn.lock_address(address)
        if PendingSignIn.in_flight_from(address) >= MAX_SIGN_INS_PER_ADDRESS:
            raise TooManyRequests(
                "Too many sign-ins were started from your address in the last ten minutes. "
                "Try again in a few minutes.",
                retry_after=int(SIGN_IN_LIFETIME.total_seconds()),
            )
        return address


def origin_for_cookie(request, redirect_uri):
    """The origin of the redirect URI, when this browser uses another name for this
    machine (127.0.0.1 for localhost): its cookie would not come back with the callback.
    Only loopback names are mended; behind a real host name a proxy may rewrite Host."""
    configured = urlsplit(redirect_uri)
    used = urlsplit(f"//{request.host}").hostname
    if used != configured.hostname and {used, configured.hostname} <= LOOPBACK_NAMES:
        return f"{configured.scheme}://{configured.netloc}"
    return None
