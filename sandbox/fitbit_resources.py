"""Fitbit's resource server: the Web API endpoints the app reads, with Bearer tokens,
scopes and the hourly budget, and the demo people's avatars. Sleep and heart rate are in
fitbit_sleep_heart.py.

    GET  /1/user/-/profile.json   (with the person's time zone)
    GET  /1/user/-/activities/steps/date/<date>/<period>.json
    POST, DELETE  /1/user/-/[<collection>/]apiSubscriptions/<subscription id>.json
    GET  /1/user/-/[<collection>/]apiSubscriptions.json
"""

import re

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from . import recordings
from .common import OAuthError, Role, as_json, avatar, now, steps_on
from .fitbit_dates import days_asked
from .fitbit_day import FitbitDay
from .fitbit_sleep_heart import FitbitSleepAndHeart
from .store import Subscription

# What a user's data can be subscribed to, with the scope each needs ("" for all of them).
COLLECTIONS = {
    "": None,
    "activities": "activity",
    "body": "weight",
    "foods": "nutrition",
    "sleep": "sleep",
    "userRevokedAccess": None,
}
SUBSCRIPTION_ID = r"[A-Za-z0-9_-]{1,50}"
STEPS_PERIODS = {"1d", "7d", "30d", "1w", "1m", "3m", "6m", "1y"}
MAX_RANGE_DAYS = 1095
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


class FitbitResourceServer(FitbitSleepAndHeart, FitbitDay, Role):
    RULES = [
        *FitbitSleepAndHeart.RULES,
        *FitbitDay.RULES,
        Rule("/1/user/-/profile.json", endpoint="profile", methods=["GET"]),
        Rule(
            "/1/user/-/activities/steps/date/<first>/<second>.json",
            endpoint="steps",
            methods=["GET"],
        ),
        Rule("/avatars/<user_id>.svg", endpoint="avatar", methods=["GET"]),
        Rule(
            "/1/user/-/apiSubscriptions/<subscription_id>.json",
            endpoint="subscription",
            methods=["POST", "DELETE"],
        ),
        Rule(
            "/1/user/-/<collection>/apiSubscriptions/<subscription_id>.json",
            endpoint="subscription",
            methods=["POST", "DELETE"],
        ),
        Rule("/1/user/-/apiSubscriptions.json", endpoint="subscriptions", methods=["GET"]),
        Rule(
            "/1/user/-/<collection>/apiSubscriptions.json",
            endpoint="subscriptions",
            methods=["GET"],
        ),
    ]

    def authorize_api_call(self, request, scope):
        """Bearer token, then scope, then the hourly budget; returns (grant, headers)."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise OAuthError(401, "invalid_client", "Authorization header required.")
        access = self.store.grants.access_token(token)
        if access is None:
            raise OAuthError(401, "invalid_token", "Access token invalid.")
        if now() >= access.expires_at:
            # Fitbit's real message repeats the token; clients must not show or log it.
            raise OAuthError(401, "expired_token", f"Access token expired: {token}")
        if scope is not None and scope not in access.grant.scope.split():
            raise OAuthError(403, "insufficient_scope", f"This call needs the {scope} scope.")

        moment, limit = now(), self.stand_in.rate_limit
        grant = access.grant
        used = self.store.calls.add(grant.client_id, grant.user_id, moment.strftime("%Y%m%d%H"))
        headers = {
            "Fitbit-Rate-Limit-Limit": str(limit),
            "Fitbit-Rate-Limit-Remaining": str(max(0, limit - used)),
            "Fitbit-Rate-Limit-Reset": str(3600 - moment.minute * 60 - moment.second),
        }
        if used > limit:
            raise OAuthError(429, "system", "Too Many Requests", headers)
        return access.grant, headers

    def on_profile(self, request):
        grant, headers = self.authorize_api_call(request, "profile")
        person = DEMO_USERS[grant.user_id]
        offset = recordings.offset_of(grant.user_id, recordings.clock_of(grant.user_id))
        profile = {
            **person,
            "encodedId": grant.user_id,
            "avatar": f"{request.url_root}avatars/{grant.user_id}.svg",
            # Where the person lives; Fitbit cuts their days by it (recordings.ZONES).
            "timezone": recordings.zone_of(grant.user_id).key,
            "offsetFromUTCMillis": int(offset.total_seconds() * 1000),
        }
        return as_json({"user": profile}, headers=headers)

    def on_steps(self, request, first, second):
        grant, headers = self.authorize_api_call(request, "activity")
        today = recordings.clock_of(grant.user_id).date()  # "today" is the person's own
        days = days_asked(first, second, today, STEPS_PERIODS, MAX_RANGE_DAYS)
        walked = self.store.walks.of(grant.user_id)
        series = [
            # Fitbit sends the count as a string.
            {
                "dateTime": day.isoformat(),
                "value": str(steps_on(grant.user_id, day) + walked.get(day.isoformat(), 0)),
            }
            for day in days
        ]
        return as_json({"activities-steps": series}, headers=headers)

    def on_avatar(self, request, user_id):
        return avatar(DEMO_USERS.get(user_id), "#00b0b9")

    # --- Subscriptions: which of a user's changes the app hears of (see fitbit.py) ----

    def subscription_call(self, request, collection):
        if collection not in COLLECTIONS:
            raise OAuthError(404, "not_found", f"No collection {collection}.")
        grant, headers = self.authorize_api_call(request, COLLECTIONS[collection])
        subscriber = self.store.subscribers.get(grant.client_id)
        wanted = request.headers.get("X-Fitbit-Subscriber-Id")
        if subscriber is None or wanted not in (None, subscriber.subscriber_id):
            raise OAuthError(400, "validation", "This app has no such subscriber.", headers)
        return grant, subscriber, headers

    def on_subscription(self, request, subscription_id, collection=""):
        grant, subscriber, headers = self.subscription_call(request, collection)
        if not re.fullmatch(SUBSCRIPTION_ID, subscription_id):
            raise OAuthError(400, "validation", "Invalid subscription id.", headers)
        if request.method == "DELETE":
            removed = self.store.subscriptions.remove(
                grant.client_id, grant.user_id, subscription_id, collection
            )
            if not removed:
                raise OAuthError(404, "not_found", "No such subscription.", headers)
            return Response(status=204, headers=headers)
        subscription = Subscription(
            grant.client_id, subscription_id, grant.user_id, collection, subscriber.subscriber_id
        )
        outcome = self.store.subscriptions.add(subscription)
        if outcome == "taken":
            raise OAuthError(409, "conflict", "This subscription id is another user's.", headers)
        return as_json(
            shown(subscription), status=201 if outcome == "created" else 200, headers=headers
        )

    def on_subscriptions(self, request, collection=""):
        grant, _, headers = self.subscription_call(request, collection)
        mine = self.store.subscriptions.of(grant.user_id, grant.client_id)
        listed = [shown(s) for s in mine if collection in ("", s.collection)]
        return as_json({"apiSubscriptions": listed}, headers=headers)


def shown(subscription):
    """A subscription as Fitbit's answers show it."""
    return {
        "collectionType": subscription.collection or "user",
        "ownerId": subscription.user_id,
        "ownerType": "user",
        "subscriberId": subscription.subscriber_id,
        "subscriptionId": subscription.subscription_id,
    }
