"""Webhooks: data that arrives by itself. The provider says when a user's data changed, and
the signed-in page fetches it again only then (see docs/webhooks.md).

This is what both dialects share: the endpoint's rules (its own limit on the body, a plain
answer a machine reads), the durable record of each delivery, and what a change does.
Each dialect reads its own deliveries: fitbit_legacy.read_webhook checks Fitbit's HMAC,
google_health.read_webhook checks Google's secret and its signature (webhook_keys.py).

A delivery is answered 204 only once it has been recorded and its changes applied, in one
transaction: the cached answers it names are marked changed, so the next view of the page
fetches them once (dashboard.py), and a user who revoked the app loses their tokens.
"""

import hashlib
import logging
from datetime import UTC, datetime

from peewee import IntegrityError
from werkzeug.wrappers import Response

import oauth
import token_store
import tracing
import webhook_keys
from dashboard import kept_today
from dialects import VERIFIED, Refused
from models import ApiCache, BrowserSession, Notification, User, db
from providers import account, dialect_of
from published_keys import KeysUnavailable, PublishedKeys

# Bodies up to this size are read; the app's other routes keep their 16 KiB.
MAX_BODY_BYTES = 64 * 1024
# When no keyset can be had, Google is asked to try again after this many seconds.
RETRY_AFTER_SECONDS = 60

log = logging.getLogger("webhooks")


def answer(status, text="", headers=None):
    return Response(text, status=status, mimetype="text/plain", headers=headers)


class Webhooks:
    """The endpoint /webhooks/<provider> for the app's dialect, and the subscriptions a
    dialect makes per user (Fitbit's; Google subscribes a whole project, see docs/webhooks.md)."""

    def __init__(self, client, settings, tokens):
        self.client, self.settings, self.tokens = client, settings, tokens
        self.dialect = client.dialect
        keyset = settings.keyset_url
        read, what = webhook_keys.enabled_keys, webhook_keys.KEYSET
        self.keys = PublishedKeys(keyset, read, what) if keyset else None

    @property
    def on(self):
        """Webhooks need their secret set: Google's Authorization value, or Fitbit's
        verification code."""
        return bool(self.settings.secret)

    def receive(self, request):
        """A request to the endpoint: Fitbit's verify GET, or a delivery."""
        if not self.on:
            variable = self.dialect.WEBHOOK_SETTINGS["secret"]
            return answer(404, f"Webhooks are off here: {variable} is not set.\n")
        if request.method == "GET":
            verified = self.dialect.verify_subscriber(request.args.get("verify", ""), self.settings)
            return answer(204 if verified else 404)
        request.max_content_length = MAX_BODY_BYTES
        body = request.get_data(cache=True)  # a larger one is a 413 before it is read
        try:
            read = self.dialect.read_webhook
            delivery = read(self.client, self.settings, self.keys, request.headers, body)
        except Refused as refused:
            log.warning("A webhook delivery was refused (%s): %s", refused.status, refused.reason)
            return answer(refused.status, refused.reason + "\n")
        except KeysUnavailable:
            log.warning("A webhook delivery waits: Google's keyset could not be fetched")
            return answer(503, "No keyset to verify with.\n", {"Retry-After": RETRY_AFTER_SECONDS})
        if delivery == VERIFIED:
            return answer(201)
        digest = hashlib.sha256(body).hexdigest() if self.dialect.DEDUPE_DELIVERIES else None
        try:
            with db.atomic():
                if not Notification.record(self.dialect.KEY, digest, len(delivery)):
                    log.info("A webhook delivery came again; it changes nothing")
                    return answer(204)
                for change in dict.fromkeys(delivery):  # an item named twice, once
                    self.apply(change, request.headers, body)
        except IntegrityError:  # the same delivery, recorded at this moment by another worker
            return answer(204)
        return answer(204)

    def apply(self, change, headers, body):
        """A change to one user's data: their cached answers of it go stale, or (revoked)
        their tokens go. Unknown users are ignored: the provider just stops retrying."""
        column = getattr(User, self.dialect.WEBHOOK_USER_FIELD)
        user = User.get_or_none((column == change.user_id) & (User.provider == self.dialect.KEY))
        if user is None:
            log.info("A webhook named a user this app does not know")
            return
        if change.revoked:
            token_store.clear_tokens(user.id)
            log.info("%s: access revoked at %s, tokens forgotten", account(user), self.dialect.NAME)
            what = "The user revoked this app's access: their tokens are forgotten here."
        else:
            paths = self.stale_paths(change, user)
            ApiCache.mark_changed(user.id, paths, datetime.now(UTC))
            log.info("%s: %s changed (%s)", account(user), change.data_type, change.when)
            what = (
                f"{change.data_type} changed ({change.when or 'no interval given'}): the cached "
                "answer is stale, and the next view of the page fetches it, once."
                if paths
                else f"{change.data_type} changed: this app does not show it."
            )
        self.trace(user, headers, body, what)

    def stale_paths(self, change, user):
        """The cache keys of the answers that show the data named in `change`: each kind of
        data (dialect.DATA) that a delivery names so, on the user's own today."""
        today = kept_today(self.client, user)
        return [
            kind.request(self.client, today).key
            for kind in self.dialect.DATA
            if change.data_type in kind.webhook_types
        ]

    def trace(self, user, headers, body, what):
        """The delivery, on the trace of each browser signed in as `user`."""
        title, shown = tracing.notification_step(
            self.dialect, f"/webhooks/{self.dialect.KEY}", headers, body, what
        )
        traces = BrowserSession.select(BrowserSession.trace).where(
            (BrowserSession.user == user) & BrowserSession.trace.is_null(False)
        )
        for (trace,) in traces.tuples():
            token_store.keep_step(trace, title, shown)

    # Subscriptions, per user: Fitbit's ------------------------------------------------

    def subscribe(self, user, kinds=None):
        """After a sign-in: ask the provider to notify this user's changes to the data the
        page shows them (or to `kinds` of it, after a consent round for them). A failure
        costs nothing but the notifications: the page goes on fetching when its cache runs
        out. With the user's budget of calls spent, nothing is asked (the subscriptions of
        an earlier sign-in stand, and the next one subscribes again)."""
        if not self.on:
            return
        if user.budget_spent():
            log.info("%s: not subscribed again: the budget is spent", account(user))
            return
        self.each_subscription(user, "POST", "subscribed to", kinds)

    def unsubscribe(self, user):
        """Before a disconnect, while the tokens still work."""
        if self.on and user.connected and dialect_of(user) is self.dialect:
            self.each_subscription(user, "DELETE", "unsubscribed from")

    def each_subscription(self, user, method, done, kinds=None):
        if kinds is None:
            kinds = tuple(kind for kind in self.dialect.DATA if kind.granted(user.scope))
        api = oauth.ApiClient(self.client, self.tokens, user.id, account(user))
        settings = self.settings
        for request in self.dialect.subscription_requests(
            self.client, settings, user, method, kinds
        ):
            try:
                api.call(request)
                log.info("%s: %s %s", account(user), done, request.key)
            except (oauth.ProviderError, oauth.RefreshBusy) as error:
                log.warning("%s: not %s %s: %r", account(user), done, request.key, error)
