"""webhooks.py and each dialect's read_webhook: the endpoint, in both dialects, with the
providers faked by `responses` and time by freezegun.

Fitbit's deliveries are signed with HMAC-SHA1 of the client secret; Google's with an ECDSA
P-256 key whose keyset the test serves, built from the keys made here.
"""

import base64
import hashlib
import hmac
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from conftest import (
    CLIENT_SECRET,
    PROFILE_URL,
    REDIRECT_URI,
    SECRETS,
    STEPS_URL,
    callback,
    csrf_token,
    fitbit_error,
    held,
    page,
    sign_in,
    start_sign_in,
    steps_body,
    token_body,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from freezegun import freeze_time
from test_google_health import GRANTED, HEALTH_ID, rollup_answer
from test_google_health import STEPS_URL as GOOGLE_STEPS_URL
from test_google_health import sign_in as google_sign_in
from werkzeug.test import Client

import fitbit_legacy
import google_health
import oauth
import webhook_keys
from fitbit_oauth_app import create_app
from models import ApiCache, BrowserSession, Notification, TraceEntry, User
from sandbox import google_webhooks
from settings import Config, WebhookSettings

VERIFY_CODE = "verify-code-SENTINEL-0c1d"
GOOGLE_SECRET = "Bearer webhook-secret-SENTINEL-a9e2"
KEYSET_URL = "https://keys.example/webhooks_public_keyset.json"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SUBSCRIPTIONS = re.compile(re.escape(fitbit_legacy.API_URL) + r"/1/user/-/.*apiSubscriptions/.*")


# --- Fitbit's side ---------------------------------------------------------------------


@pytest.fixture
def config(database_url, client_config):
    return Config(
        client=client_config,
        database_url=database_url,
        secret_key=b"test-secret-key",
        cache_seconds=86400,  # with webhooks, a day: changes arrive by themselves
        webhooks=WebhookSettings(secret=VERIFY_CODE),
    )


def fitbit_signature(body, secret=CLIENT_SECRET):
    digest = hmac.new(f"{secret}&".encode(), body, hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def fitbit_delivery(owner="ABC123", collection="activities", day="2026-11-23"):
    item = {
        "collectionType": collection,
        "date": day,
        "ownerId": owner,
        "ownerType": "user",
        "subscriptionId": f"1-{collection}",
    }
    return json.dumps([item]).encode()


def deliver_to_fitbit_endpoint(browser, body, signature=None):
    headers = {"X-Fitbit-Signature": fitbit_signature(body) if signature is None else signature}
    return browser.post(
        "/webhooks/fitbit", data=body, headers=headers, content_type="application/json"
    )


def steps_calls(fitbit):
    return [call for call in fitbit.calls if call.request.url == STEPS_URL]


def subscribed_sign_in(browser, fitbit):
    fitbit.post(SUBSCRIPTIONS, status=201, json={"subscriptionId": "1"})
    response = sign_in(browser, fitbit)
    assert response.status_code == 302
    return response


def test_fitbits_verify_handshake_gets_204_for_the_code_and_404_otherwise(browser):
    assert browser.get("/webhooks/fitbit", query_string={"verify": VERIFY_CODE}).status_code == 204
    assert browser.get("/webhooks/fitbit", query_string={"verify": "wrong"}).status_code == 404
    assert browser.get("/webhooks/fitbit").status_code == 404
    # A code that starts like the right one is no closer.
    almost = {"verify": VERIFY_CODE[:-1]}
    assert browser.get("/webhooks/fitbit", query_string=almost).status_code == 404


def test_without_a_verification_code_the_endpoint_is_off(database_url, client_config):
    off = Client(create_app(Config(client=client_config, database_url=database_url)))
    response = off.get("/webhooks/fitbit", query_string={"verify": ""})
    assert response.status_code == 404
    assert "FITBIT_SUBSCRIBER_VERIFICATION_CODE is not set" in page(response)
    body = fitbit_delivery()
    assert deliver_to_fitbit_endpoint(off, body).status_code == 404


def test_the_access_log_never_shows_the_verification_code(app, caplog):
    from conftest import listening, url_of

    caplog.set_level(logging.INFO, logger="werkzeug")
    with listening() as (server,):
        server.app = app
        answer = requests.get(f"{url_of(server)}/webhooks/fitbit?verify={VERIFY_CODE}", timeout=5)
    assert answer.status_code == 204
    assert "GET /webhooks/fitbit?[redacted]" in caplog.text
    assert VERIFY_CODE not in caplog.text


def test_after_sign_in_the_user_is_subscribed_to_activities_and_revocation(browser, fitbit):
    subscribed_sign_in(browser, fitbit)
    posts = [call.request for call in fitbit.calls if SUBSCRIPTIONS.fullmatch(call.request.url)]
    assert [request.url for request in posts] == [
        fitbit_legacy.API_URL + "/1/user/-/activities/apiSubscriptions/1-activities.json",
        fitbit_legacy.API_URL
        + "/1/user/-/userRevokedAccess/apiSubscriptions/1-userRevokedAccess.json",
    ]
    assert all(request.method == "POST" for request in posts)
    assert all(request.headers["Authorization"].startswith("Bearer ") for request in posts)
    assert all("X-Fitbit-Subscriber-Id" not in request.headers for request in posts)


def test_the_subscriber_id_is_sent_when_set(database_url, client_config, fitbit):
    settings = WebhookSettings(secret=VERIFY_CODE, subscriber_id="2")
    browser = Client(create_app(Config(client_config, database_url, webhooks=settings)))
    subscribed_sign_in(browser, fitbit)
    posts = [call.request for call in fitbit.calls if SUBSCRIPTIONS.fullmatch(call.request.url)]
    assert len(posts) == 2
    assert all(request.headers["X-Fitbit-Subscriber-Id"] == "2" for request in posts)


def test_a_failure_to_subscribe_never_fails_the_sign_in(browser, fitbit, caplog):
    fitbit.post(SUBSCRIPTIONS, status=500, json={"errors": [{"errorType": "system"}]})
    response = sign_in(browser, fitbit)
    assert response.status_code == 302
    assert "You are signed in with Fitbit." in page(browser.get("/"))
    assert "not subscribed to" in caplog.text


def test_a_sign_in_with_the_budget_spent_asks_for_no_subscriptions(browser, fitbit, caplog):
    """Each would be one more 429: the subscriptions of the last sign-in stand."""
    fitbit.post(SUBSCRIPTIONS, status=201, json={"subscriptionId": "1"})
    fitbit.post(fitbit_legacy.TOKEN_URL, json=token_body())
    reset = {"Fitbit-Rate-Limit-Reset": "900"}
    fitbit.get(PROFILE_URL, status=429, json=fitbit_error("system"), headers=reset)
    with caplog.at_level(logging.INFO):
        response = callback(browser, start_sign_in(browser)["state"])
    assert response.status_code == 302 and User.get().connected
    assert [call for call in fitbit.calls if SUBSCRIPTIONS.fullmatch(call.request.url)] == []
    assert "the budget is spent" in caplog.text


def test_disconnect_deletes_the_subscriptions_before_revoking(browser, fitbit):
    subscribed_sign_in(browser, fitbit)
    fitbit.delete(SUBSCRIPTIONS, status=204)
    fitbit.post(fitbit_legacy.REVOKE_URL, status=200)
    browser.post("/auth/revoke", data={"csrf_token": csrf_token(browser)})
    calls = [(call.request.method, call.request.url) for call in fitbit.calls]
    deletes = [url for method, url in calls if method == "DELETE"]
    assert deletes == [
        fitbit_legacy.API_URL + "/1/user/-/activities/apiSubscriptions/1-activities.json",
        fitbit_legacy.API_URL
        + "/1/user/-/userRevokedAccess/apiSubscriptions/1-userRevokedAccess.json",
    ]
    assert calls.index(("POST", fitbit_legacy.REVOKE_URL)) > calls.index(("DELETE", deletes[-1]))
    assert held(User.get()).refresh_token is None


def test_a_signed_fitbit_delivery_costs_one_fetch_on_the_next_view(browser, fitbit):
    with freeze_time(NOW) as clock:
        subscribed_sign_in(browser, fitbit)
        fitbit.get(STEPS_URL, json=steps_body(values=(8123, 10500, 4200)))
        assert "4,200" in page(browser.get("/"))
        before = len(steps_calls(fitbit))
        # Unchanged, the cached answer serves every view: no call, hours later.
        clock.tick(timedelta(hours=5))
        assert "4,200" in page(browser.get("/"))
        assert len(steps_calls(fitbit)) == before

        clock.tick(60)
        response = deliver_to_fitbit_endpoint(browser, fitbit_delivery())
        assert response.status_code == 204
        fitbit.replace("GET", STEPS_URL, json=steps_body(values=(8123, 10500, 6700)))
        clock.tick(60)
        assert "6,700" in page(browser.get("/"))
        assert len(steps_calls(fitbit)) == before + 1
        # And no more calls after it.
        assert "6,700" in page(browser.get("/"))
        assert len(steps_calls(fitbit)) == before + 1


def test_a_fitbit_body_sent_twice_is_two_changes(browser, fitbit):
    """Each sync of the same day sends the same body: none is dropped for repeating."""
    with freeze_time(NOW) as clock:
        subscribed_sign_in(browser, fitbit)
        browser.get("/")
        calls = len(steps_calls(fitbit))
        for n in range(2):
            clock.tick(60)
            assert deliver_to_fitbit_endpoint(browser, fitbit_delivery()).status_code == 204
            clock.tick(60)
            browser.get("/")
            assert len(steps_calls(fitbit)) == calls + n + 1
        assert Notification.select().count() == 2


@pytest.mark.parametrize(
    "signature",
    ["", "not base64 at all", fitbit_signature(b"another body"), fitbit_signature(b"x", "other")],
    ids=["missing", "garbage", "other-body", "other-secret"],
)
def test_a_bad_fitbit_signature_gets_404_and_changes_nothing(browser, fitbit, signature):
    with freeze_time(NOW) as clock:
        subscribed_sign_in(browser, fitbit)
        browser.get("/")
        clock.tick(60)
        body = fitbit_delivery()
        response = deliver_to_fitbit_endpoint(browser, body, signature=signature)
        assert response.status_code == 404
        assert Notification.select().count() == 0
        assert not any(row.changed for row in ApiCache.select())
        calls = len(steps_calls(fitbit))
        browser.get("/")
        assert len(steps_calls(fitbit)) == calls


@pytest.mark.parametrize(
    "body",
    [b"[{", b"{}", b'"text"', b"[1, 2]", b'[{"ownerId": "ABC123"}]', b'[{"collectionType": 3}]'],
    ids=["malformed", "object", "string", "numbers", "no-collection", "bad-collection"],
)
def test_a_signed_fitbit_body_of_the_wrong_shape_is_a_400(browser, fitbit, body):
    subscribed_sign_in(browser, fitbit)
    response = deliver_to_fitbit_endpoint(browser, body)
    assert response.status_code == 400
    assert Notification.select().count() == 0


def test_webhook_bodies_up_to_64_kib_are_read_and_larger_ones_are_413(browser, fitbit):
    subscribed_sign_in(browser, fitbit)
    # 40 KiB, over the 16 KiB of the app's other routes: still read.
    items = json.loads(fitbit_delivery()) * 300
    body = json.dumps(items).encode()
    assert 16 * 1024 < len(body) < 64 * 1024
    assert deliver_to_fitbit_endpoint(browser, body).status_code == 204
    big = json.dumps(items * 2).encode()
    assert len(big) > 64 * 1024
    assert deliver_to_fitbit_endpoint(browser, big).status_code == 413
    assert Notification.select().count() == 1


def test_user_revoked_access_forgets_the_users_tokens(browser, fitbit):
    subscribed_sign_in(browser, fitbit)
    body = fitbit_delivery(collection="userRevokedAccess")
    assert deliver_to_fitbit_endpoint(browser, body).status_code == 204
    user = User.get()
    assert held(user).access_token is None and held(user).refresh_token is None
    assert ApiCache.select().count() == 0
    assert "Connect" in page(browser.get("/"))


def test_a_delivery_for_a_user_this_app_does_not_know_is_204_and_changes_nothing(browser, fitbit):
    subscribed_sign_in(browser, fitbit)
    body = fitbit_delivery(owner="NOBODY")
    assert deliver_to_fitbit_endpoint(browser, body).status_code == 204
    assert not any(row.changed for row in ApiCache.select())
    body = fitbit_delivery(owner="NOBODY", collection="userRevokedAccess")
    assert deliver_to_fitbit_endpoint(browser, body).status_code == 204
    assert User.get().connected


def test_the_trace_shows_the_notification_and_the_fetch_after_it(browser, fitbit):
    with freeze_time(NOW) as clock:
        subscribed_sign_in(browser, fitbit)
        clock.tick(60)
        deliver_to_fitbit_endpoint(browser, fitbit_delivery())
        clock.tick(60)
        browser.get("/")
        trace = page(browser.get("/trace"))  # while the session is minutes old
    titles = [entry.title for entry in TraceEntry.select().order_by(TraceEntry.id)]
    notified = titles.index("A notification from Fitbit")
    assert titles[notified + 1] == "An API call: /1/user/-/activities/steps/date/today/1m.json"
    assert "the cached answer is stale" in trace and "X-Fitbit-Signature" in trace
    for secret in (*SECRETS, VERIFY_CODE):
        assert secret not in trace


# --- Google's side ---------------------------------------------------------------------


class Keys:
    """Signing keys made here, and the keyset that publishes them."""

    def __init__(self):
        self.keys = []  # [(key id, PEM, status)]

    def add(self, status="ENABLED"):
        key_id = 1_000 + len(self.keys)
        self.keys.append((key_id, google_webhooks.new_private_key(), status))
        return key_id

    def keyset(self):
        return google_webhooks.keyset(self.keys)

    def sign(self, body, key_id=None):
        key_id = key_id or self.keys[-1][0]
        pem = next(pem for found, pem, _ in self.keys if found == key_id)
        return google_webhooks.sign(key_id, pem, body)


@pytest.fixture
def keys():
    keys = Keys()
    keys.add()
    return keys


@pytest.fixture
def google_app(database_url):
    client = oauth.Client(
        google_health, "123-abc.apps.googleusercontent.com", CLIENT_SECRET, REDIRECT_URI
    )
    settings = WebhookSettings(secret=GOOGLE_SECRET, keyset_url=KEYSET_URL)
    config = Config(client, database_url, secret_key=b"k", cache_seconds=86400, webhooks=settings)
    return create_app(config)


@pytest.fixture
def google_browser(google_app):
    return Client(google_app)


def google_delivery(user=HEALTH_ID, **extra):
    interval = {"start": {"date": {"year": 2026, "month": 11, "day": 23}}, "end": {"date": {}}}
    data = {"healthUserId": user, "dataType": "steps", "operation": "UPSERT"}
    return json.dumps({"data": {**data, "civilTimeInterval": interval, **extra}}).encode()


def deliver_to_google_endpoint(browser, body, signature=None, secret=GOOGLE_SECRET, keys=None):
    headers = {}
    if secret is not None:
        headers["Authorization"] = secret
    if signature is None and keys is not None:
        signature = keys.sign(body)
    if signature is not None:
        headers["X-HEALTHAPI-SIGNATURE"] = signature
    return browser.post(
        "/webhooks/google", data=body, headers=headers, content_type="application/json"
    )


def serve_keyset(google, keys):
    google.get(KEYSET_URL, json=keys.keyset())


def keyset_fetches(google):
    return sum(1 for call in google.calls if call.request.url == KEYSET_URL)


def google_api_calls(google):
    return [call for call in google.calls if call.request.url == GOOGLE_STEPS_URL]


def test_googles_handshake_201_with_the_secret_401_without_403_when_wrong(google_browser):
    body = b'{"type": "verification"}'
    assert deliver_to_google_endpoint(google_browser, body).status_code == 201
    assert deliver_to_google_endpoint(google_browser, body, secret=None).status_code == 401
    wrong = deliver_to_google_endpoint(google_browser, body, secret="Bearer guess")
    assert wrong.status_code == 403
    almost = deliver_to_google_endpoint(google_browser, body, secret=GOOGLE_SECRET[:-1])
    assert almost.status_code == 403


def test_a_signed_google_delivery_costs_one_fetch_on_the_next_view(google_browser, google, keys):
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        google.replace("POST", GOOGLE_STEPS_URL, json=rollup_answer(last=NOW.date()))
        assert "8,123" in page(google_browser.get("/"))
        before = len(google_api_calls(google))
        clock.tick(timedelta(hours=5))
        google_browser.get("/")
        assert len(google_api_calls(google)) == before  # no change, no call

        clock.tick(60)
        response = deliver_to_google_endpoint(google_browser, google_delivery(), keys=keys)
        assert response.status_code == 204
        google.replace(
            "POST", GOOGLE_STEPS_URL, json=rollup_answer(last=NOW.date(), counts=("9876",))
        )
        clock.tick(60)
        assert "9,876" in page(google_browser.get("/"))
        assert len(google_api_calls(google)) == before + 1
        google_browser.get("/")
        assert len(google_api_calls(google)) == before + 1


def test_either_documented_signature_header_is_taken(google_browser, google, keys):
    serve_keyset(google, keys)
    google_sign_in(google_browser, google)
    for n, name in enumerate(google_health.SIGNATURE_HEADERS):
        body = google_delivery(note=n)
        headers = {"Authorization": GOOGLE_SECRET, name: keys.sign(body)}
        response = google_browser.post("/webhooks/google", data=body, headers=headers)
        assert response.status_code == 204
    assert Notification.select().count() == 2


def test_a_delivery_without_authorization_is_taken_when_signed_and_logged(
    google_browser, google, keys, caplog
):
    serve_keyset(google, keys)
    google_sign_in(google_browser, google)
    response = deliver_to_google_endpoint(google_browser, google_delivery(), secret=None, keys=keys)
    assert response.status_code == 204
    assert "came without its Authorization header" in caplog.text
    assert GOOGLE_SECRET.split()[1] not in caplog.text


def test_a_wrong_authorization_is_refused_even_with_a_good_signature(google_browser, google, keys):
    serve_keyset(google, keys)
    google_sign_in(google_browser, google)
    body = google_delivery()
    response = deliver_to_google_endpoint(google_browser, body, secret="Bearer guess", keys=keys)
    assert response.status_code == 403
    assert Notification.select().count() == 0
    assert keyset_fetches(google) == 0  # refused before any key was looked for


def test_bad_signatures_are_refused_and_change_nothing(google_browser, google, keys):
    serve_keyset(google, keys)
    google_sign_in(google_browser, google)
    body = google_delivery()
    other = Keys()
    other.add()
    tampered = bytearray(base64.b64decode(keys.sign(body)))
    tampered[-1] ^= 1
    cases = {
        "missing": None,
        "not base64": "%%%",
        "no Tink prefix": base64.b64encode(b"\x00" + base64.b64decode(keys.sign(body))[1:]),
        "another body": keys.sign(b'{"data": {}}'),
        "another key with the same id": other.sign(body, key_id=1000),
        "tampered": base64.b64encode(bytes(tampered)).decode(),
        "too short": base64.b64encode(b"\x01\x00").decode(),
    }
    for case, signature in cases.items():
        if isinstance(signature, bytes):
            signature = signature.decode()
        headers = {"Authorization": GOOGLE_SECRET}
        if signature is not None:
            headers["X-HEALTHAPI-SIGNATURE"] = signature
        response = google_browser.post("/webhooks/google", data=body, headers=headers)
        assert response.status_code == 401, case
    # A signature with no body at all.
    empty = deliver_to_google_endpoint(google_browser, b"", signature=keys.sign(b"x"))
    assert empty.status_code == 401
    assert Notification.select().count() == 0
    assert not any(row.changed for row in ApiCache.select())


def test_an_unknown_key_id_fetches_the_keyset_again_once_a_minute(google_browser, google, keys):
    """Rotation: a new key is found by fetching again; an id still unknown is refused, and
    within the minute it costs no fetch."""
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        assert (
            deliver_to_google_endpoint(google_browser, google_delivery(n=1), keys=keys).status_code
            == 204
        )
        assert keyset_fetches(google) == 1
        # Google rotates: a new key, published.
        clock.tick(120)
        rotated = keys.add()
        google.replace("GET", KEYSET_URL, json=keys.keyset())
        body = google_delivery(n=2)
        response = deliver_to_google_endpoint(google_browser, body, keys.sign(body, rotated))
        assert response.status_code == 204
        assert keyset_fetches(google) == 2
        # A key that no keyset has: refused, after one more fetch...
        clock.tick(120)
        stranger = Keys()
        stranger.add()
        stranger.keys = [(999, stranger.keys[0][1], "ENABLED")]
        body = google_delivery(n=3)
        assert (
            deliver_to_google_endpoint(google_browser, body, stranger.sign(body, 999)).status_code
            == 401
        )
        assert keyset_fetches(google) == 3
        # ...and within that minute, refused without one.
        clock.tick(30)
        body = google_delivery(n=4)
        assert (
            deliver_to_google_endpoint(google_browser, body, stranger.sign(body, 999)).status_code
            == 401
        )
        assert keyset_fetches(google) == 3
    assert Notification.select().count() == 2


def test_a_body_signed_with_a_disabled_key_is_refused(google_browser, google):
    keys = Keys()
    disabled = keys.add(status="DISABLED")
    keys.add()
    serve_keyset(google, keys)
    google_sign_in(google_browser, google)
    body = google_delivery()
    response = deliver_to_google_endpoint(google_browser, body, keys.sign(body, disabled))
    assert response.status_code == 401
    assert Notification.select().count() == 0


def test_a_key_disabled_later_stops_counting_when_the_keyset_is_an_hour_old(
    google_browser, google, keys
):
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        assert (
            deliver_to_google_endpoint(google_browser, google_delivery(n=1), keys=keys).status_code
            == 204
        )
        keys.keys = [(key_id, pem, "DISABLED") for key_id, pem, _ in keys.keys]
        google.replace("GET", KEYSET_URL, json=keys.keyset())
        clock.tick(timedelta(minutes=61))
        body = google_delivery(n=2)
        assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 401


def test_without_any_keyset_the_answer_is_503_with_retry_after(google_browser, google, keys):
    google.get(KEYSET_URL, status=500)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        body = google_delivery()
        response = deliver_to_google_endpoint(google_browser, body, keys=keys)
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "60"
        assert Notification.select().count() == 0  # nothing recorded as handled
        # Google retries later, and by then the keyset can be had.
        google.replace("GET", KEYSET_URL, json=keys.keyset())
        clock.tick(61)
        assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 204
        assert Notification.select().count() == 1


def test_keys_kept_still_verify_when_a_later_fetch_fails(google_browser, google, keys):
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        assert (
            deliver_to_google_endpoint(google_browser, google_delivery(n=1), keys=keys).status_code
            == 204
        )
        google.replace("GET", KEYSET_URL, body=requests.ConnectionError("down"))
        clock.tick(timedelta(hours=2))  # the keyset is old: fetched again, and that fails
        response = deliver_to_google_endpoint(google_browser, google_delivery(n=2), keys=keys)
        assert response.status_code == 204
        assert keyset_fetches(google) == 2


def test_a_google_delivery_sent_again_changes_nothing_and_costs_no_fetch(
    google_browser, google, keys
):
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        body = google_delivery()
        clock.tick(60)
        assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 204
        clock.tick(60)
        google_browser.get("/")
        calls = len(google_api_calls(google))
        # Google thought the 204 was lost, and sends the same bytes again.
        clock.tick(60)
        assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 204
        clock.tick(60)
        google_browser.get("/")
        assert len(google_api_calls(google)) == calls
        assert Notification.select().count() == 1


@pytest.mark.parametrize(
    "body",
    [
        # An array of items, each with intervals[] of ISO times.
        [
            {
                "healthUserId": HEALTH_ID,
                "dataType": "steps",
                "operation": "UPSERT",
                "intervals": [
                    {
                        "civilIso8601TimeInterval": {
                            "startTime": "2026-11-23T08:00:00",
                            "endTime": "2026-11-23T09:00:00",
                        }
                    }
                ],
            }
        ],
        # An array of {"data": ...}, with a physical interval and fields nobody knows.
        [
            {
                "data": {
                    "healthUserId": HEALTH_ID,
                    "dataType": "dataTypes/steps",
                    "operation": "DELETE",
                    "physicalTimeInterval": {"startTime": "2026-11-23T08:00:00Z"},
                    "somethingNew": {"nested": True},
                },
                "alsoNew": 1,
            }
        ],
        # "data" holding a list.
        {"data": [{"healthUserId": HEALTH_ID, "dataType": "STEPS"}]},
    ],
    ids=["array-iso", "array-of-data", "data-list"],
)
def test_each_documented_shape_of_body_is_taken(google_browser, google, keys, body):
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        clock.tick(60)
        raw = json.dumps(body).encode()
        assert deliver_to_google_endpoint(google_browser, raw, keys=keys).status_code == 204
        assert all(row.changed for row in ApiCache.select() if "dailyRollUp" in row.path)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1]", b'{"type": "other"}', b'{"data": {"dataType": "steps"}}', b"7"],
    ids=["malformed", "numbers", "no-data", "no-user", "number"],
)
def test_a_signed_google_body_of_the_wrong_shape_is_a_400(google_browser, google, keys, body):
    serve_keyset(google, keys)
    response = deliver_to_google_endpoint(google_browser, body, keys=keys)
    assert response.status_code == 400
    assert Notification.select().count() == 0


def test_a_google_body_over_64_kib_is_413(google_browser, keys):
    body = google_delivery(padding="x" * 70_000)
    assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 413


def test_a_google_delivery_for_an_unknown_user_is_204(google_browser, google, keys):
    serve_keyset(google, keys)
    body = google_delivery(user="hu-nobody")
    assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 204
    assert User.select().count() == 0


def test_the_google_trace_shows_the_notification_masked(google_browser, google, keys):
    serve_keyset(google, keys)
    with freeze_time(NOW) as clock:
        google_sign_in(google_browser, google)
        clock.tick(60)
        deliver_to_google_endpoint(google_browser, google_delivery(), keys=keys)
        clock.tick(60)
        google_browser.get("/")
        trace = page(google_browser.get("/trace"))  # while the session is minutes old
    assert "A notification from Google Health" in trace
    assert "Bearer ***" in trace and "X-HEALTHAPI-SIGNATURE" in trace
    assert GOOGLE_SECRET.split()[1] not in trace
    titles = [entry.title for entry in TraceEntry.select().order_by(TraceEntry.id)]
    after = titles[titles.index("A notification from Google Health") + 1 :]
    # The steps fetched again, traced after the notification that made them stale.
    assert any(title.endswith(":dailyRollUp") for title in after)
    assert BrowserSession.select().count() == 1


# --- The keyset, read by hand ------------------------------------------------------------


def test_a_keyset_written_by_hand_from_the_docs_is_read(google_browser, google):
    """x and y in minimal two's complement: 33 bytes with a leading zero when the top bit is
    set. The keyset here is put together byte by byte from the reference, not by the
    stand-in's writer."""
    while True:
        private = ec.generate_private_key(ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        if numbers.x >> 255:  # the top bit set: 33 bytes
            break
    x = b"\x00" + numbers.x.to_bytes(32, "big")
    y = numbers.y.to_bytes(33 if numbers.y >> 255 else 32, "big")
    y = y if y[0] & 0x80 == 0 else b"\x00" + y
    params = b"\x08\x03\x10\x02\x18\x02"
    message = b"\x12" + bytes([len(params)]) + params
    message += b"\x1a" + bytes([len(x)]) + x + b"\x22" + bytes([len(y)]) + y
    key = {
        "keyId": 77,
        "status": "ENABLED",
        "outputPrefixType": "TINK",
        "keyData": {
            "typeUrl": webhook_keys.PUBLIC_KEY_TYPE,
            "keyMaterialType": "ASYMMETRIC_PUBLIC",
            "value": base64.b64encode(message).decode(),
        },
    }
    google.get(KEYSET_URL, json={"primaryKeyId": 77, "key": [key]})
    body = google_delivery(user="hu-nobody")
    der = private.sign(body, ec.ECDSA(hashes.SHA256()))
    signature = base64.b64encode(b"\x01" + (77).to_bytes(4, "big") + der).decode()
    assert len(x) == 33
    assert deliver_to_google_endpoint(google_browser, body, signature).status_code == 204


def test_a_key_in_ieee_p1363_encoding_verifies_too(google_browser, google):
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    keyset = google_webhooks.keyset([(5, pem, "ENABLED")])
    raw = base64.b64decode(keyset["key"][0]["keyData"]["value"])
    keyset["key"][0]["keyData"]["value"] = base64.b64encode(
        raw.replace(b"\x18\x02", b"\x18\x01", 1)
    ).decode()
    google.get(KEYSET_URL, json=keyset)
    body = google_delivery(user="hu-nobody")
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(private.sign(body, ec.ECDSA(hashes.SHA256())))
    p1363 = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    signature = base64.b64encode(b"\x01" + (5).to_bytes(4, "big") + p1363).decode()
    assert deliver_to_google_endpoint(google_browser, body, signature).status_code == 204


def test_keys_of_other_kinds_are_skipped():
    pem = google_webhooks.new_private_key()
    good = google_webhooks.keyset([(1, pem, "ENABLED")])["key"][0]
    raw = base64.b64decode(good["keyData"]["value"])
    sha512 = {**good, "keyId": 2, "keyData": {**good["keyData"]}}
    sha512["keyData"]["value"] = base64.b64encode(raw.replace(b"\x08\x03", b"\x08\x04", 1)).decode()
    other_type = {**good, "keyId": 3, "keyData": {**good["keyData"], "typeUrl": "other"}}
    raw_prefix = {**good, "keyId": 4, "outputPrefixType": "RAW"}
    broken = {**good, "keyId": 5, "keyData": {**good["keyData"], "value": "AAAA"}}
    keys = webhook_keys.enabled_keys({"key": [good, sha512, other_type, raw_prefix, broken, 7]})
    assert list(keys) == [1]


def test_no_webhook_secret_reaches_a_page_or_the_log(google_browser, google, keys, caplog):
    caplog.set_level(logging.DEBUG)
    serve_keyset(google, keys)
    google_sign_in(google_browser, google, scope=GRANTED)
    deliver_to_google_endpoint(google_browser, b'{"type": "verification"}')
    deliver_to_google_endpoint(google_browser, google_delivery(), secret="Bearer guess", keys=keys)
    deliver_to_google_endpoint(google_browser, google_delivery(), keys=keys)
    shown = caplog.text + page(google_browser.get("/")) + page(google_browser.get("/trace"))
    assert GOOGLE_SECRET.split()[1] not in shown and "guess" not in shown
    assert repr(WebhookSettings(secret=GOOGLE_SECRET)).count("SENTINEL") == 0


def test_the_day_of_a_notification_does_not_matter_for_the_fitbit_steps(browser, fitbit):
    """Fitbit names the day that changed; the page's month of steps ends today, so any day
    of it makes the answer stale."""
    with freeze_time(NOW) as clock:
        subscribed_sign_in(browser, fitbit)
        browser.get("/")
        clock.tick(60)
        yesterday = (NOW.date() - timedelta(days=1)).isoformat()
        deliver_to_fitbit_endpoint(browser, fitbit_delivery(day=yesterday))
        assert ApiCache.get(ApiCache.path.contains("steps")).changed
        assert not ApiCache.get(ApiCache.path.contains("profile")).changed


def test_an_item_named_many_times_in_one_delivery_is_applied_once(browser, fitbit):
    subscribed_sign_in(browser, fitbit)
    body = json.dumps(json.loads(fitbit_delivery()) * 300).encode()
    assert deliver_to_fitbit_endpoint(browser, body).status_code == 204
    notified = TraceEntry.select().where(TraceEntry.title == "A notification from Fitbit")
    assert notified.count() == 1
    assert Notification.get().items == 300


# --- Sleep and heart rate ----------------------------------------------------------------------

FITBIT_SLEEP_URL = re.compile(re.escape(fitbit_legacy.API_URL) + r"/1\.2/user/-/sleep/date/.*")
FITBIT_HEART_URL = fitbit_legacy.API_URL + fitbit_legacy.HEART_RATE_PATH
GOOGLE_LISTS = google_health.API_URL + google_health.DATA_TYPES


def calls_to(mock, pattern):
    return [call for call in mock.calls if re.fullmatch(pattern, call.request.url.split("?")[0])]


def test_fitbit_users_are_subscribed_to_the_sleep_collection_once_they_grant_it(browser, fitbit):
    fitbit.post(SUBSCRIPTIONS, status=201, json={"subscriptionId": "1"})
    sign_in(browser, fitbit, scope="activity profile sleep")
    paths = [urlsplit(call.request.url).path for call in calls_to(fitbit, SUBSCRIPTIONS.pattern)]
    assert paths == [
        "/1/user/-/activities/apiSubscriptions/1-activities.json",
        "/1/user/-/sleep/apiSubscriptions/1-sleep.json",
        "/1/user/-/userRevokedAccess/apiSubscriptions/1-userRevokedAccess.json",
    ]


def fitbit_fetches(fitbit):
    """How many times the sleep, the steps and the heart rate were fetched."""
    urls = (FITBIT_SLEEP_URL.pattern, re.escape(STEPS_URL), re.escape(FITBIT_HEART_URL))
    return [len(calls_to(fitbit, url)) for url in urls]


def test_a_fitbit_sleep_delivery_costs_one_sleep_fetch_and_no_steps_fetch(browser, fitbit):
    with freeze_time(NOW) as clock:
        fitbit.post(SUBSCRIPTIONS, status=201, json={"subscriptionId": "1"})
        sign_in(browser, fitbit, scope="activity profile sleep heartrate")
        fitbit.get(FITBIT_SLEEP_URL, json={"sleep": []})
        fitbit.get(FITBIT_HEART_URL, json={"activities-heart": []})
        browser.get("/")
        assert fitbit_fetches(fitbit) == [1, 1, 1]
        clock.tick(60)
        sleep = fitbit_delivery(collection="sleep")
        assert deliver_to_fitbit_endpoint(browser, sleep).status_code == 204
        browser.get("/")
        browser.get("/")
        assert fitbit_fetches(fitbit) == [2, 1, 1]
        # The activities collection is the steps and the heart rate.
        assert deliver_to_fitbit_endpoint(browser, fitbit_delivery()).status_code == 204
        browser.get("/")
        assert fitbit_fetches(fitbit) == [2, 2, 2]


@pytest.mark.parametrize(
    "data_type", ["sleep", "daily-resting-heart-rate", "heart-rate", "exercise"]
)
def test_a_google_delivery_for_a_listed_type_costs_one_fetch_of_that_list(
    google_browser, google, keys, data_type
):
    serve_keyset(google, keys)
    names = ("sleep", "daily-resting-heart-rate", "heart-rate", "exercise")
    lists = {name: f"{GOOGLE_LISTS}/{name}/dataPoints" for name in names}
    with freeze_time(NOW) as clock:
        granted = f"{GRANTED} {google_health.SLEEP.scope} {google_health.HEART_RATE.scope}"
        google_sign_in(google_browser, google, scope=granted)
        for url in lists.values():
            google.get(url, json={})
        google_browser.get("/")
        clock.tick(60)
        body = google_delivery(dataType=data_type)
        assert deliver_to_google_endpoint(google_browser, body, keys=keys).status_code == 204
        google_browser.get("/")
        google_browser.get("/")
    fetched = {name: len(calls_to(google, re.escape(url))) for name, url in lists.items()}
    assert fetched == {name: 2 if name == data_type else 1 for name in lists}
    assert len(google_api_calls(google)) == 1  # the steps: not named, not fetched again


@pytest.mark.parametrize("keyset", [{"key": None}, {"key": "k"}, {"key": [None, 1, "k"]}, []])
def test_a_keyset_of_any_other_shape_holds_no_key_and_verifies_nothing(
    google_browser, google, keys, keyset
):
    google.get(KEYSET_URL, json=keyset)
    with freeze_time(NOW):
        google_sign_in(google_browser, google)
        response = deliver_to_google_endpoint(google_browser, google_delivery(), keys=keys)
    assert response.status_code == 401  # a signature by no key it holds
    assert Notification.select().count() == 0
