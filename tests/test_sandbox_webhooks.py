"""The stand-ins' webhooks, from the providers' side: Fitbit's subscription endpoints, the
handshakes, signed notifications, their retries, the walk page and `python -m sandbox walk`.

The stand-ins are driven in process with werkzeug's test client; what they send goes to a
recorder, or to the app's own endpoint through its test client.
"""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from freezegun import freeze_time
from werkzeug.test import Client

import webhook_keys
from sandbox import FitbitStandIn, GoogleStandIn, RegisteredClient, recordings
from sandbox.__main__ import main as sandbox_main
from sandbox.common import steps_on
from sandbox.google_resources import HEALTH
from sandbox.notifications import RETRY_DELAYS, Notifier

APP = RegisteredClient("SUBS01", "stand-in-secret-SENTINEL", "http://app.test/auth/callback")
ALEX_FITBIT, ALEX_GOOGLE = "7QW2XR", "hu-4f1e9c2a7b"
ENDPOINT = "http://app.test/webhooks/fitbit"
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
NOON_IN_LOS_ANGELES = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # Alex's clock


class Recorder:
    """A subscriber's endpoint: records what it is sent, answers as told."""

    def __init__(self, verify_code=None, secret=None, status=204):
        self.verify_code, self.secret, self.status = verify_code, secret, status
        self.sent = []

    def __call__(self, method, url, body=None, headers=None, params=None):
        self.sent.append((method, url, body, dict(headers or {}), dict(params or {})))
        if method == "GET":  # Fitbit's handshake
            return 204 if params.get("verify") == self.verify_code else 404
        if body == b'{"type": "verification"}':  # Google's
            return 201 if (headers or {}).get("Authorization") == self.secret else 401
        return self.status

    def deliveries(self):
        return [
            entry for entry in self.sent if entry[0] == "POST" and b"verification" not in entry[2]
        ]


def token_for(stand_in, user_id, scope, client=APP):
    """Tokens for `user_id`, issued to `client` the way a sign-in would, through the store."""
    from sandbox.store import Grant

    grant = Grant(client.client_id, user_id, scope)
    stand_in.store.grants.add_code("code-" + user_id, _issued(grant))
    access = "access-" + user_id
    stand_in.store.grants.add_tokens(
        grant, access, "refresh-" + user_id, datetime(2100, 1, 1, tzinfo=UTC)
    )
    return access


def _issued(grant):
    from sandbox.store import AuthorizationCode

    return AuthorizationCode(grant, APP.redirect_uri, "", datetime.now(UTC))


@pytest.fixture
def fitbit():
    stand_in = FitbitStandIn(clients=[APP])
    subscriber = stand_in.generated_subscriber(APP.client_id, ENDPOINT)
    stand_in.notifier = Notifier(send=Recorder(verify_code=subscriber.secret), sleep=lambda _: None)
    return stand_in


@pytest.fixture
def google():
    stand_in = GoogleStandIn(clients=[APP])
    subscriber = stand_in.generated_subscriber(APP.client_id, "http://app.test/webhooks/google")
    stand_in.notifier = Notifier(send=Recorder(secret=subscriber.secret), sleep=lambda _: None)
    return stand_in


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# --- Fitbit's subscription endpoints -----------------------------------------------------


def test_fitbits_subscriptions_created_listed_and_deleted(fitbit):
    api = Client(fitbit)
    token = token_for(fitbit, ALEX_FITBIT, "activity profile")
    path = "/1/user/-/activities/apiSubscriptions/1-activities.json"
    created = api.post(path, headers=bearer(token))
    assert created.status_code == 201
    assert created.json == {
        "collectionType": "activities",
        "ownerId": ALEX_FITBIT,
        "ownerType": "user",
        "subscriberId": "1",
        "subscriptionId": "1-activities",
    }
    assert api.post(path, headers=bearer(token)).status_code == 200  # it exists already
    listed = api.get("/1/user/-/apiSubscriptions.json", headers=bearer(token)).json
    assert [s["subscriptionId"] for s in listed["apiSubscriptions"]] == ["1-activities"]
    assert "Fitbit-Rate-Limit-Remaining" in created.headers
    assert api.delete(path, headers=bearer(token)).status_code == 204
    assert api.delete(path, headers=bearer(token)).json["errors"][0]["errorType"] == "not_found"


def test_a_subscription_id_taken_by_another_user_is_409(fitbit):
    api = Client(fitbit)
    path = "/1/user/-/activities/apiSubscriptions/shared.json"
    assert (
        api.post(path, headers=bearer(token_for(fitbit, ALEX_FITBIT, "activity"))).status_code
        == 201
    )
    other = api.post(path, headers=bearer(token_for(fitbit, "9KD3MS", "activity")))
    assert other.status_code == 409


def test_subscribing_needs_a_token_the_collections_scope_and_this_apps_subscriber(fitbit):
    api = Client(fitbit)
    path = "/1/user/-/activities/apiSubscriptions/1.json"
    assert api.post(path).status_code == 401
    profile_only = token_for(fitbit, ALEX_FITBIT, "profile")
    assert api.post(path, headers=bearer(profile_only)).status_code == 403
    # userRevokedAccess needs no scope.
    revoked = "/1/user/-/userRevokedAccess/apiSubscriptions/1.json"
    assert api.post(revoked, headers=bearer(profile_only)).status_code == 201
    other = {**bearer(token_for(fitbit, "9KD3MS", "activity")), "X-Fitbit-Subscriber-Id": "7"}
    assert api.post(path, headers=other).status_code == 400
    assert api.post("/1/user/-/weather/apiSubscriptions/1.json", headers=other).status_code == 404


# --- Handshakes and notifications --------------------------------------------------------


def test_a_fitbit_walk_does_the_handshake_then_sends_a_signed_array(fitbit):
    api = Client(fitbit)
    token = token_for(fitbit, ALEX_FITBIT, "activity profile")
    api.post("/1/user/-/activities/apiSubscriptions/1-activities.json", headers=bearer(token))
    with freeze_time(NOW):
        sent = fitbit.walk(ALEX_FITBIT, 2500)
    assert sent == [(ENDPOINT, 204)]
    recorder = fitbit.notifier.send
    handshake = [entry for entry in recorder.sent if entry[0] == "GET"]
    assert len(handshake) == 2  # the right code, then a wrong one
    subscriber = fitbit.store.subscribers.get(APP.client_id)
    assert handshake[0][4] == {"verify": subscriber.secret}
    assert handshake[1][4]["verify"] != subscriber.secret
    assert subscriber.verified
    [(_, url, body, headers, _)] = recorder.deliveries()
    assert url == ENDPOINT
    assert json.loads(body) == [
        {
            "collectionType": "activities",
            "date": "2026-11-23",
            "ownerId": ALEX_FITBIT,
            "ownerType": "user",
            "subscriptionId": "1-activities",
        }
    ]
    key = f"{APP.client_secret}&".encode()
    expected = base64.b64encode(hmac.new(key, body, hashlib.sha1).digest()).decode()
    assert headers["X-Fitbit-Signature"] == expected
    # A second walk: the handshake is not repeated.
    fitbit.walk(ALEX_FITBIT, 100)
    assert len([entry for entry in recorder.sent if entry[0] == "GET"]) == 2


def test_a_subscriber_that_fails_the_handshake_is_sent_nothing(fitbit):
    fitbit.notifier.send.verify_code = "another code"
    api = Client(fitbit)
    token = token_for(fitbit, ALEX_FITBIT, "activity")
    api.post("/1/user/-/activities/apiSubscriptions/1.json", headers=bearer(token))
    assert fitbit.walk(ALEX_FITBIT, 2500) == [(ENDPOINT, None)]
    assert fitbit.notifier.send.deliveries() == []
    assert not fitbit.store.subscribers.get(APP.client_id).verified


def test_nobody_subscribed_is_told_nothing_and_the_steps_are_still_walked(fitbit):
    token = token_for(fitbit, ALEX_FITBIT, "activity")
    with freeze_time(NOW):
        today = recordings.clock_of(ALEX_FITBIT).date()  # Alex's own
        assert fitbit.walk(ALEX_FITBIT, 2500) == []
        answer = Client(fitbit).get(
            "/1/user/-/activities/steps/date/today/1d.json", headers=bearer(token)
        )
        expected = steps_on(ALEX_FITBIT, today) + 2500
    assert answer.json["activities-steps"][0]["value"] == str(expected)


def test_a_google_walk_does_the_handshake_then_sends_a_signed_notification(google):
    token = token_for(google, ALEX_GOOGLE, f"openid {HEALTH}activity_and_fitness.readonly")
    token_for(google, "hu-8d03b6e5c1", "openid")  # Sam granted no steps scope: not told
    with freeze_time(NOW):
        sent = google.walk(ALEX_GOOGLE, 2500)
    assert sent == [("http://app.test/webhooks/google", 204)]
    recorder = google.notifier.send
    [subscriber] = google.subscribers_of(APP.client_id)
    assert subscriber.verified  # the registration's operation is done, after the handshake
    handshake = [entry for entry in recorder.sent if entry[2] == b'{"type": "verification"}']
    assert [entry[3].get("Authorization") for entry in handshake] == [subscriber.secret, None]
    [(_, _, body, headers, _)] = recorder.deliveries()
    data = json.loads(body)["data"]
    assert data["healthUserId"] == ALEX_GOOGLE and data["dataType"] == "steps"
    assert data["civilTimeInterval"]["end"]["date"] == {"year": 2026, "month": 11, "day": 23}
    assert headers["Authorization"] == subscriber.secret
    # The app's own reader of keysets verifies it against the keyset the stand-in serves.
    keyset = Client(google).get("/googlehealthapi/webhooks/webhooks_public_keyset.json").json

    class Served:
        def key(self, key_id):
            return webhook_keys.enabled_keys(keyset).get(key_id)

    key_id = webhook_keys.verify(Served(), headers["X-HEALTHAPI-SIGNATURE"], body)
    assert keyset["primaryKeyId"] == key_id
    assert token


def test_a_google_subscriber_that_fails_the_handshake_is_sent_nothing(google):
    """An endpoint that takes the verification without the secret fails Google's check."""
    google.notifier.send.secret = None  # it answers 201 to a verification without one
    token_for(google, ALEX_GOOGLE, f"{HEALTH}activity_and_fitness.readonly")
    assert google.walk(ALEX_GOOGLE, 10) == []  # no subscriber: its registration failed
    assert google.notifier.send.deliveries() == []
    assert google.subscribers_of(APP.client_id) == []
    with google.store.db.transaction() as sql:
        [(result,)] = sql.execute("SELECT result FROM operations").fetchall()
    assert json.loads(result)["error"]["code"] == 9  # FAILED_PRECONDITION


def test_two_google_walks_a_moment_apart_never_send_the_same_body(google):
    """The app takes a body it has seen as a delivery sent again: each walk's interval ends
    at its own moment, to the microsecond."""
    token_for(google, ALEX_GOOGLE, f"{HEALTH}activity_and_fitness.readonly")
    with freeze_time(NOW) as clock:
        google.walk(ALEX_GOOGLE, 10)
        clock.tick(0.001)
        google.walk(ALEX_GOOGLE, 10)
    first, second = (entry[2] for entry in google.notifier.send.deliveries())
    assert first != second


def test_a_rotated_key_is_published_and_signs_from_then_on(google):
    token_for(google, ALEX_GOOGLE, f"{HEALTH}activity_and_fitness.readonly")
    old, _ = google.signing_key()
    new = google.rotate_key()
    keyset = Client(google).get("/googlehealthapi/webhooks/webhooks_public_keyset.json").json
    assert {key["keyId"] for key in keyset["key"]} == {old, new}
    assert keyset["primaryKeyId"] == new
    google.walk(ALEX_GOOGLE, 10)
    [(_, _, _, headers, _)] = google.notifier.send.deliveries()
    raw = base64.b64decode(headers["X-HEALTHAPI-SIGNATURE"])
    assert int.from_bytes(raw[1:5], "big") == new
    google.rotate_key(disable_old=True)
    statuses = {
        key["keyId"]: key["status"]
        for key in Client(google)
        .get("/googlehealthapi/webhooks/webhooks_public_keyset.json")
        .json["key"]
    }
    assert statuses[old] == statuses[new] == "DISABLED"


# --- Retries -----------------------------------------------------------------------------


def test_a_failed_delivery_is_retried_with_backoff():
    statuses = iter([None, 500, 204])
    sent, waited = [], []

    def send(method, url, body=None, headers=None, params=None):
        sent.append(url)
        return next(statuses)

    notifier = Notifier(send=send, sleep=waited.append)
    assert notifier.deliver("http://app.test/hook", b"[]", {}, retry_in_background=False) == 204
    assert len(sent) == 3
    assert waited == [1, 2]


def test_a_delivery_is_given_up_after_every_retry(caplog):
    sent, waited = [], []
    notifier = Notifier(send=lambda *args, **kwargs: sent.append(1) or 503, sleep=waited.append)
    first = notifier.deliver("http://app.test/hook", b"[]", {})  # retried in a thread
    notifier.wait()
    assert first == 503
    assert len(sent) == 1 + len(RETRY_DELAYS)
    assert waited == list(RETRY_DELAYS)
    assert "given up after 5 tries" in caplog.text


# --- The walk page, and the command ----------------------------------------------------


def test_the_walk_page_lists_the_people_and_walks_one(fitbit):
    page = Client(fitbit)
    shown = page.get("/walk").get_data(as_text=True)
    assert "Alex Rivera" in shown and "Sam Kowalski" in shown and ENDPOINT in shown
    # 01:13 on 8 December in UTC is still the evening of the 7th for Alex, in Los Angeles:
    # the walk is on Alex's own day.
    with freeze_time("2026-12-08 01:13:00"):
        answer = page.post("/walk", data={"person": ALEX_FITBIT, "steps": "2500"})
    assert answer.status_code == 303
    words = parse_qs(urlsplit(answer.headers["Location"]).query)["walked"][0]
    assert words.startswith("Alex Rivera walked 2,500 steps.")
    assert fitbit.store.walks.of(ALEX_FITBIT) == {"2026-12-07": 2500}


@pytest.mark.parametrize(
    "form",
    [
        {"person": "nobody", "steps": "10"},
        {"person": ALEX_FITBIT, "steps": "0"},
        {"person": ALEX_FITBIT, "steps": "1e9"},
        {"person": ALEX_FITBIT},
    ],
    ids=["nobody", "zero", "not-a-number", "no-steps"],
)
def test_the_walk_form_refuses_bad_input(fitbit, form):
    answer = Client(fitbit).post("/walk", data=form)
    assert answer.status_code == 400
    assert fitbit.store.walks.of(ALEX_FITBIT) == {}


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site", "Origin": "null"}, 403),
        ({"Sec-Fetch-Site": "same-site"}, 403),
        # What a browser sends from the page itself, whose policy is no-referrer.
        ({"Sec-Fetch-Site": "same-origin", "Origin": "null"}, 303),
        ({"Origin": "http://localhost"}, 303),
    ],
    ids=["other-origin", "cross-site", "same-site", "this-page", "this-origin"],
)
def test_the_walk_form_refuses_a_post_from_another_site(google, headers, status):
    form = {"person": ALEX_GOOGLE, "steps": "10"}
    answer = Client(google).post("/walk", data=form, headers=headers)
    assert answer.status_code == status
    assert bool(google.store.walks.of("7QW2XR")) == (status == 303)


def test_python_m_sandbox_walk_adds_steps_and_says_who_was_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    monkeypatch.delenv("PROVIDER", raising=False)
    with pytest.raises(SystemExit) as ended:
        sandbox_main(["walk", "alex", "2500"])
    assert ended.value.code == 0
    said = capsys.readouterr().out
    assert "Alex Rivera walked 2,500 steps at the Fitbit stand-in." in said
    assert "No app has subscribed to their changes" in said
    stand_in = FitbitStandIn(database=str(tmp_path / "stand-in.db"))
    assert sum(stand_in.store.walks.of(ALEX_FITBIT).values()) == 2500
    with pytest.raises(SystemExit) as ended:
        sandbox_main(["walk", "nobody", "10"])
    assert ended.value.code == 2
    assert "Name one of alex, sam" in capsys.readouterr().err


# --- A night logged by hand, and the sleep notifications ------------------------------------


def test_a_night_logged_on_the_walk_page_replaces_the_one_recorded_and_notifies_fitbit_apps(
    fitbit,
):
    api = Client(fitbit)
    token = token_for(fitbit, ALEX_FITBIT, "activity sleep")
    for collection in ("activities", "sleep"):
        path = f"/1/user/-/{collection}/apiSubscriptions/1-{collection}.json"
        api.post(path, headers=bearer(token))
    with freeze_time(NOON_IN_LOS_ANGELES):  # the night ended at 07:00 this morning
        answer = api.post("/night", data={"person": ALEX_FITBIT, "hours": "7.5"})
        assert answer.status_code == 303
        words = parse_qs(urlsplit(answer.headers["Location"]).query)["walked"][0]
        assert words.startswith("Alex Rivera logged a night of 7 h 30 min.")
        log = api.get("/1.2/user/-/sleep/date/2026-11-23/2026-11-23.json", headers=bearer(token))
    [night] = [record for record in log.json["sleep"] if record["isMainSleep"]]
    assert (night["timeInBed"], night["logType"]) == (450, "manual")
    assert night["endTime"] == "2026-11-23T07:00:00.000"
    [(_, _, body, _, _)] = fitbit.notifier.send.deliveries()  # the sleep subscription's alone
    assert [item["collectionType"] for item in json.loads(body)] == ["sleep"]


def test_a_night_logged_at_google_is_a_sleep_notification_to_apps_that_read_sleep(google):
    token_for(google, ALEX_GOOGLE, f"openid {HEALTH}sleep.readonly")
    token_for(google, "hu-8d03b6e5c1", f"openid {HEALTH}activity_and_fitness.readonly")
    with freeze_time(NOON_IN_LOS_ANGELES):  # Alex's; in Auckland, Sam's night is tomorrow's
        assert google.log_night(ALEX_GOOGLE, 480) == [("http://app.test/webhooks/google", 204)]
        assert google.log_night("hu-8d03b6e5c1", 480) == []  # Sam's app reads no sleep
    [(_, _, body, _, _)] = google.notifier.send.deliveries()
    data = json.loads(body)["data"]
    assert (data["dataType"], data["healthUserId"]) == ("sleep", ALEX_GOOGLE)
    assert data["civilTimeInterval"]["end"]["time"]["hours"] == 7


@pytest.mark.parametrize(
    "form",
    [
        {"person": ALEX_FITBIT, "hours": "0.5"},
        {"person": ALEX_FITBIT, "hours": "15"},
        {"person": ALEX_FITBIT, "hours": "nan"},
        {"person": "nobody", "hours": "7"},
    ],
    ids=["too-short", "too-long", "not-a-number", "nobody"],
)
def test_the_night_form_refuses_bad_input(fitbit, form):
    answer = Client(fitbit).post("/night", data=form)
    assert answer.status_code == 400
    assert fitbit.store.nights.of(ALEX_FITBIT) == {}
