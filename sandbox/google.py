"""A local stand-in for Google: its OAuth 2.0 server, OpenID Connect's userinfo, and the
Google Health API endpoints the app reads.

It follows ../shared/google-health-api.md in the project notes and refuses what Google would
refuse: the authorization server is in google_authorization.py, the resource servers in
google_resources.py. OAuth errors have RFC 6749 5.2's shape; the Health API's, and those of
unknown paths, are google.rpc.Status objects. Webhooks, signed as Google signs them, are in
google_webhooks.py, and the subscribers API that registers them in google_subscribers.py;
OpenID Connect's discovery, keys and ID tokens in google_oidc.py.
"""

import os
import secrets
from datetime import timedelta

from . import google_oidc, google_webhooks, recordings
from .common import StandIn, as_json, now
from .google_authorization import (
    AUTHORIZE_PATH,
    CODE_LIFETIME,
    DEFAULT_EXPIRES_IN,
    REVOKE_PATH,
    TOKEN_PATH,
    GoogleAuthorizationServer,
)
from .google_day import EXERCISE_SCOPES
from .google_resources import (
    PEOPLE,
    RATE_LIMIT,
    STEPS_SCOPES,
    USERINFO_PATH,
    GoogleResourceServer,
)
from .google_sleep_heart import HEART_SCOPES, SLEEP_SCOPES
from .google_status import ApiError
from .google_subscribers import GoogleSubscribersApi, project_of
from .walk_page import WalkPage

# Each request drops at most this many stale entries of each kind.
PRUNE_BATCH = 50
# The app's own subscriber in sandbox mode, for every data type the app reads.
APP_SUBSCRIBER = "app"
APP_CONFIGS = [
    {
        "dataTypes": ["steps", "sleep", "daily-resting-heart-rate", "heart-rate", "exercise"],
        "subscriptionCreatePolicy": "AUTOMATIC",
    }
]
# The scopes that read each kind of data a change can be notified of.
READ_SCOPES = {
    "steps": STEPS_SCOPES,
    "sleep": SLEEP_SCOPES,
    "heart-rate": HEART_SCOPES,
    "exercise": EXERCISE_SCOPES,
}


class GoogleStandIn(StandIn):
    """Google's side, as a WSGI app (see common.StandIn for the plumbing)."""

    NAME = "Google"
    MOUNT = "/sandbox/google"  # where the app serves it in sandbox mode
    DEFAULT_EXPIRES_IN = DEFAULT_EXPIRES_IN
    RATE_LIMIT = RATE_LIMIT
    AuthorizationServer = GoogleAuthorizationServer
    ResourceServer = GoogleResourceServer
    WalkPage = WalkPage
    OTHER_ROLES = (GoogleSubscribersApi,)
    # The app's setting for the subscriber's secret, for `python -m sandbox` to print.
    WEBHOOK_SECRET_SETTING = "GOOGLE_WEBHOOK_SECRET"
    INTERNAL_ERROR = ApiError(500, "INTERNAL", "Internal error encountered.")

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
            "GOOGLE_ISSUER": root,  # what its callback carries as iss
            "GOOGLE_WEBHOOK_KEYSET_URL": root + google_webhooks.KEYSET_PATH,
        }

    def error_answer(self, error):
        if not isinstance(error, ApiError):  # the OAuth endpoints: RFC 6749 5.2
            body = {"error": error.error, "error_description": error.description}
            return as_json(body, error.status)
        answer = {"code": error.status, "message": error.description, "status": error.error}
        if error.reason:
            answer["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": error.reason,
                    "domain": "googleapis.com",
                }
            ]
        return as_json({"error": answer}, error.status, error.headers)

    @staticmethod
    def unrouted(error):
        status = "NOT_FOUND" if error.code == 404 else "INVALID_ARGUMENT"
        return ApiError(error.code, status, error.name)

    def forget_the_unusable(self):
        moment = now()
        self.store.prune(
            code_cutoff=moment - CODE_LIFETIME,
            token_cutoff=moment - timedelta(days=1),
            hour=moment.strftime("%Y%m%d%H%M"),
            most=PRUNE_BATCH,
        )

    # --- Subscribers and their notifications -------------------------------------------

    @staticmethod
    def people():
        return {user_id: person["fullName"] for user_id, person in PEOPLE.items()}

    def data_key(self, user_id):
        # The same made-up data as at Fitbit, for the people who had a Fitbit account.
        return PEOPLE[user_id]["legacy"] or user_id

    @property
    def subscribers_api(self):
        return self.other_roles[0]

    def generated_subscriber(self, client_id, endpoint):
        """The app's subscriber, registered for its Cloud project through the subscribers
        API's own code, for every data type the stand-in notifies of: its endpoint, and the
        Authorization value its deliveries carry."""
        return self.subscribers_api.register(
            project_of(client_id), APP_SUBSCRIBER, endpoint, google_webhooks.new_secret, APP_CONFIGS
        )

    def subscribers_of(self, client_id):
        return self.subscribers_api.subscribers_of(project_of(client_id))

    def handshake(self, subscriber):
        """As at registration: {"type": "verification"} with the secret must get 201, and
        the same without it 401 or 403."""
        body = b'{"type": "verification"}'
        json_type = {"Content-Type": "application/json"}
        send = self.notifier.send
        right = send(
            "POST", subscriber.endpoint, body, {**json_type, "Authorization": subscriber.secret}
        )
        wrong = send("POST", subscriber.endpoint, body, json_type)
        return right == 201 and wrong in (401, 403)

    def signing_key(self):
        return self.store.signing_keys.primary(google_webhooks.new_private_key)

    def notifications(self, user_id, data_type, start, end):
        """For each app the user granted a scope that reads `data_type` (subscribed
        AUTOMATICally, as a subscriber for it is), one signed delivery."""
        key_id, pem = self.signing_key()
        # The interval on the person's own clock, as the data's civil times are.
        key = self.data_key(user_id)
        start, end = (recordings.clock_of(key, edge) for edge in (start, end))
        body = google_webhooks.notification(user_id, data_type, start, end)
        scopes = READ_SCOPES[data_type]
        clients = {
            client_id
            for client_id, scope in self.store.grants.live(user_id)
            if scopes & set(scope.split())
        }
        for client_id in sorted(clients):
            for subscriber in self.subscribers_api.ready(project_of(client_id), data_type):
                headers = {
                    "Content-Type": "application/json",
                    "Authorization": subscriber.secret,
                    "X-HEALTHAPI-SIGNATURE": google_webhooks.sign(key_id, pem, body),
                }
                yield subscriber, body, headers

    def rotate_id_token_key(self):
        """A new key signs ID tokens from now on; the oldest of the two published goes.
        Its key id."""
        return self.store.id_token_keys.rotate(google_oidc.new_rsa_key)

    def rotate_key(self, disable_old=False):
        """A new signing key, primary from now on; the old ones stay enabled unless
        `disable_old`. Its key id."""
        if disable_old:
            for key_id, _, _ in self.store.signing_keys.all():
                self.store.signing_keys.set_status(key_id, "DISABLED")
        return self.store.signing_keys.add(google_webhooks.new_private_key())
