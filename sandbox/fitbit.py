"""A local stand-in for Fitbit: its OAuth 2.0 server and two Web API endpoints.

Fitbit retired its legacy Web API in autumn 2026, so this plays the other party. It
follows Fitbit's protocol (see ../shared/fitbit-api.md in the project notes) and refuses
what Fitbit would refuse: the authorization server is in fitbit_authorization.py, the
resource server in fitbit_resources.py. It notifies subscribers as Fitbit did, with an
HMAC-SHA1 signature (below). Every answer that is an error has Fitbit's shape,
{"errors": [{"errorType", "message"}], "success": false}, unknown paths included.
"""

import base64
import hashlib
import hmac
import json
import secrets
from datetime import timedelta

from .common import OAuthError, StandIn, as_json, now
from .fitbit_authorization import CODE_LIFETIME, FitbitAuthorizationServer
from .fitbit_resources import DEMO_USERS, FitbitResourceServer
from .walk_page import WalkPage

DEFAULT_EXPIRES_IN = 28800  # eight hours, as at Fitbit
RATE_LIMIT = 150  # API calls per user per app per hour
# An expired access token is still recognised for a day, and answered "expired_token" as
# Fitbit does; after that it is forgotten, and unknown.
EXPIRED_TOKEN_MEMORY = timedelta(days=1)
# Each request drops at most this many stale entries of each kind, so that the work per
# request stays small and the stand-in left running does not grow without end.
PRUNE_BATCH = 50
# The collection a change of each kind of data is notified in.
COLLECTIONS = {"steps": "activities", "sleep": "sleep"}


def fitbit_error(status, error_type, message, headers=None):
    body = {"errors": [{"errorType": error_type, "message": message}], "success": False}
    return as_json(body, status, headers)


class FitbitStandIn(StandIn):
    """Fitbit's side, as a WSGI app (see common.StandIn for the plumbing)."""

    NAME = "Fitbit"
    MOUNT = "/sandbox"  # where the app serves it in sandbox mode
    DEFAULT_EXPIRES_IN = DEFAULT_EXPIRES_IN
    RATE_LIMIT = RATE_LIMIT
    AuthorizationServer = FitbitAuthorizationServer
    ResourceServer = FitbitResourceServer
    WalkPage = WalkPage
    # The app's setting for the subscriber's secret, for `python -m sandbox` to print.
    WEBHOOK_SECRET_SETTING = "FITBIT_SUBSCRIBER_VERIFICATION_CODE"
    INTERNAL_ERROR = OAuthError(500, "system", "Internal error.")
    # What an app gets of the intraday heart rate (fitbit_day.py): "granted", as an app that
    # Fitbit approved; or, as one it did not, "omitted" or "forbidden".
    intraday = "granted"

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

    def error_answer(self, error):
        return fitbit_error(error.status, error.error, error.description, error.headers)

    @staticmethod
    def unrouted(error):
        # Fitbit answers unknown paths and methods in its JSON error shape too.
        error_type = "not_found" if error.code == 404 else "invalid_request"
        return OAuthError(error.code, error_type, error.name)

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

    # --- Subscribers and their notifications -------------------------------------------

    @staticmethod
    def people():
        return {user_id: person["fullName"] for user_id, person in DEMO_USERS.items()}

    def generated_subscriber(self, client_id, endpoint):
        """The app's subscriber, as added at dev.fitbit.com: its endpoint and a
        verification code."""
        return self.store.subscribers.generated(client_id, endpoint, lambda: secrets.token_hex(16))

    def handshake(self, subscriber):
        """As when a subscriber is added: the right code must get 204, and a wrong one 404."""
        send = self.notifier.send
        right = send("GET", subscriber.endpoint, params={"verify": subscriber.secret})
        wrong = send("GET", subscriber.endpoint, params={"verify": secrets.token_hex(16)})
        return right == 204 and wrong == 404

    def notifications(self, user_id, data_type, start, end):
        """For each app subscribed to the user's collection of `data_type` (or to every
        collection), one delivery: a JSON array of what changed, signed with that app's
        secret."""
        collection = COLLECTIONS[data_type]
        items = {}
        for subscription in self.store.subscriptions.of(user_id):
            if subscription.collection in ("", collection):
                items.setdefault(subscription.client_id, []).append(
                    {
                        "collectionType": collection,
                        "date": end.date().isoformat(),
                        "ownerId": user_id,
                        "ownerType": "user",
                        "subscriptionId": subscription.subscription_id,
                    }
                )
        for client_id, changes in items.items():
            subscriber = self.store.subscribers.get(client_id)
            client = self.store.clients.get(client_id)
            if subscriber is None or client is None:
                continue
            body = json.dumps(changes).encode()
            headers = {
                "Content-Type": "application/json",
                "X-Fitbit-Signature": signature(client.client_secret, body),
            }
            yield subscriber, body, headers


def signature(client_secret, body):
    """Base64 of HMAC-SHA1 over the raw body, keyed with the client secret and "&"."""
    digest = hmac.new(f"{client_secret}&".encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")
