"""The Google stand-in's subscribers API, as a client written from Google's reference would
drive it (the google-health-api client's requests, shape for shape): a service token, then
subscribers created, listed, changed and deleted, each change a long-running operation
that is done only after the endpoint's handshake. And docs/webhooks.md's registration command,
replayed against the stand-in as written.
"""

import base64
import json
import re
import shlex
from pathlib import Path

import pytest
from test_sandbox_webhooks import Recorder, token_for
from werkzeug.test import Client

from sandbox import GoogleStandIn, RegisteredClient
from sandbox.google_resources import HEALTH
from sandbox.google_subscribers import CLOUD_PLATFORM
from sandbox.notifications import Notifier

APP = RegisteredClient(
    "271828182845-4f1e9c2a7b.apps.googleusercontent.com",
    "GOCSPX-stand-in-SENTINEL",
    "https://app.example/auth/callback",
)
OTHER = RegisteredClient("314159265358-other.apps.googleusercontent.com", "other", "https://o/cb")
PROJECT = "271828182845"
ENDPOINT = "https://app.example/webhooks/google"
SECRET = "Bearer s3cr3t-SENTINEL"
SUBSCRIBERS = f"/v4/projects/{PROJECT}/subscribers"
CONFIGS = [{"dataTypes": ["steps", "sleep"], "subscriptionCreatePolicy": "AUTOMATIC"}]


@pytest.fixture
def stand_in():
    google = GoogleStandIn(clients=[APP, OTHER])
    google.notifier = Notifier(send=Recorder(secret=SECRET), sleep=lambda _: None)
    return google


@pytest.fixture
def google(stand_in):
    return Client(stand_in)


def service_token(google, client=APP, scope=CLOUD_PLATFORM):
    answer = google.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client.client_id, client.client_secret),
    )
    return answer


def auth(google, client=APP):
    return {"Authorization": "Bearer " + service_token(google, client).json["access_token"]}


def create(google, subscriber_id="webhooks", endpoint=ENDPOINT, secret=SECRET, configs=CONFIGS):
    body = {
        "endpointUri": endpoint,
        "endpointAuthorization": {"secret": secret},
        "subscriberConfigs": configs,
    }
    query = {"subscriberId": subscriber_id} if subscriber_id else {}
    return google.post(SUBSCRIBERS, json=body, query_string=query, headers=auth(google))


def operation(google, answer):
    return google.get(f"/v4/{answer.json['name']}", headers=auth(google))


def alex_grants_steps(stand_in):
    return token_for(
        stand_in, "hu-4f1e9c2a7b", f"openid {HEALTH}activity_and_fitness.readonly", APP
    )


def handshakes(stand_in):
    return [entry for entry in stand_in.notifier.send.sent if b"verification" in entry[2]]


# --- Tokens ----------------------------------------------------------------------------------


def test_a_clients_credentials_buy_a_cloud_platform_token_and_nothing_else(google):
    answer = service_token(google)
    assert answer.status_code == 200
    assert answer.json["token_type"] == "Bearer" and answer.json["expires_in"] == 3600
    assert "refresh_token" not in answer.json and "id_token" not in answer.json
    assert service_token(google, scope=HEALTH + "activity_and_fitness.readonly").status_code == 400
    wrong = RegisteredClient(APP.client_id, "wrong", APP.redirect_uri)
    assert service_token(google, wrong).json["error"] == "invalid_client"


def test_the_api_wants_a_service_token_of_the_same_project(google, stand_in):
    body = {"endpointUri": ENDPOINT, "endpointAuthorization": {"secret": SECRET}}
    assert google.post(SUBSCRIBERS, json=body).json["error"]["status"] == "UNAUTHENTICATED"
    user = alex_grants_steps(stand_in)
    denied = google.post(SUBSCRIBERS, json=body, headers={"Authorization": f"Bearer {user}"})
    assert denied.status_code == 403  # a user's token is never enough
    other = google.post(SUBSCRIBERS, json=body, headers=auth(google, OTHER))
    assert (other.status_code, other.json["error"]["status"]) == (403, "PERMISSION_DENIED")
    assert google.get(SUBSCRIBERS, headers=auth(google, OTHER)).status_code == 403


# --- Create, and the operation ---------------------------------------------------------------


def test_a_subscriber_is_created_by_an_operation_done_after_the_handshake(google, stand_in):
    answer = create(google)
    assert answer.status_code == 200
    assert re.fullmatch(r"operations/[0-9a-f]+", answer.json["name"])
    assert answer.json["done"] is False and handshakes(stand_in) == []
    assert google.get(SUBSCRIBERS, headers=auth(google)).json == {"subscribers": []}
    done = operation(google, answer).json
    # The handshake, as at registration: with the secret, then without it.
    assert [entry[3].get("Authorization") for entry in handshakes(stand_in)] == [SECRET, None]
    assert done["done"] is True and "error" not in done
    subscriber = done["response"]
    assert subscriber["name"] == f"projects/{PROJECT}/subscribers/webhooks"
    assert subscriber["endpointUri"] == ENDPOINT and subscriber["subscriberConfigs"] == CONFIGS
    assert subscriber["endpointAuthorization"] == {"secretSet": True}  # never the secret
    assert subscriber["createTime"].endswith("Z") and subscriber["state"] == "ACTIVE"
    listed = google.get(SUBSCRIBERS, headers=auth(google)).json
    assert listed == {"subscribers": [subscriber]}
    # Read again, it is the same; the handshake is not made twice.
    assert operation(google, answer).json == done and len(handshakes(stand_in)) == 2
    # Also under the project, as one client addresses operations.
    under = google.get(f"/v4/projects/{PROJECT}/{answer.json['name']}", headers=auth(google))
    assert under.json == done
    assert SECRET not in json.dumps(listed) + json.dumps(done)


def test_an_endpoint_that_fails_the_handshake_ends_the_operation_failed_precondition(
    google, stand_in
):
    stand_in.notifier.send.secret = "Bearer another"  # it takes another secret
    done = operation(google, create(google)).json
    assert done["done"] is True and done["error"]["code"] == 9 and "response" not in done
    assert google.get(SUBSCRIBERS, headers=auth(google)).json == {"subscribers": []}


def test_a_subscriber_id_is_taken_once(google):
    operation(google, create(google))
    again = create(google)
    assert (again.status_code, again.json["error"]["status"]) == (409, "ALREADY_EXISTS")


def test_without_an_id_one_is_made(google):
    done = operation(google, create(google, subscriber_id=None)).json
    assert re.fullmatch(
        rf"projects/{PROJECT}/subscribers/[a-z][a-z0-9-]+", done["response"]["name"]
    )


@pytest.mark.parametrize(
    "change",
    [
        {"endpoint": "http://app.example/webhooks/google"},  # not https, not this machine
        {"endpoint": "not a url"},
        {"secret": ""},
        {"configs": [{"dataTypes": ["steps"], "subscriptionCreatePolicy": "SOMETIMES"}]},
        {"configs": [{"dataTypes": [], "subscriptionCreatePolicy": "AUTOMATIC"}]},
        {"configs": [{"dataTypes": ["Steps!"], "subscriptionCreatePolicy": "AUTOMATIC"}]},
        {"subscriber_id": "Has_Capitals"},
    ],
)
def test_a_bad_subscriber_is_invalid_argument(google, change):
    answer = create(google, **change)
    assert (answer.status_code, answer.json["error"]["status"]) == (400, "INVALID_ARGUMENT")


# --- List, patch, delete ---------------------------------------------------------------------


def test_subscribers_are_listed_a_page_at_a_time(google):
    for name in ("one", "two", "three"):
        operation(google, create(google, subscriber_id=name))
    first = google.get(SUBSCRIBERS, query_string={"pageSize": 2}, headers=auth(google)).json
    assert [s["name"].rsplit("/", 1)[1] for s in first["subscribers"]] == ["one", "three"]
    rest = google.get(
        SUBSCRIBERS,
        query_string={"pageSize": 2, "pageToken": first["nextPageToken"]},
        headers=auth(google),
    ).json
    assert [s["name"].rsplit("/", 1)[1] for s in rest["subscribers"]] == ["two"]
    assert "nextPageToken" not in rest


def test_a_patch_of_the_configs_is_done_at_once(google, stand_in):
    subscriber = operation(google, create(google)).json["response"]
    # As the google-health-api client sends it: the whole Subscriber, unset fields as null.
    body = {**subscriber, "subscriberConfigs": [{**CONFIGS[0], "dataTypes": ["steps"]}]}
    body.update(endpointAuthorization={"secret": None, "secretSet": None}, state=None)
    answer = google.patch(
        f"/v4/{subscriber['name']}",
        json=body,
        query_string={"updateMask": "subscriberConfigs"},
        headers=auth(google),
    ).json
    assert answer["done"] is True
    assert answer["response"]["subscriberConfigs"][0]["dataTypes"] == ["steps"]
    assert len(handshakes(stand_in)) == 2  # only the create's


def test_a_new_endpoint_must_pass_the_handshake_before_it_counts(google, stand_in):
    subscriber = operation(google, create(google)).json["response"]
    moved = "https://moved.example/webhooks/google"
    answer = google.patch(
        f"/v4/{subscriber['name']}",
        json={"endpointUri": moved},
        query_string={"updateMask": "endpointUri"},
        headers=auth(google),
    )
    assert answer.json["done"] is False
    [kept] = google.get(SUBSCRIBERS, headers=auth(google)).json["subscribers"]
    assert kept["endpointUri"] == ENDPOINT  # not yet
    done = operation(google, answer).json
    assert done["response"]["endpointUri"] == moved
    assert handshakes(stand_in)[-1][1] == moved


def test_a_delete_is_an_operation_done_at_once_and_the_subscriber_hears_no_more(google, stand_in):
    subscriber = operation(google, create(google)).json["response"]
    alex_grants_steps(stand_in)
    assert stand_in.walk("hu-4f1e9c2a7b", 100) == [(ENDPOINT, 204)]
    answer = google.delete(
        f"/v4/{subscriber['name']}", query_string={"force": "true"}, headers=auth(google)
    )
    assert answer.json["done"] is True and answer.json["response"] == {}
    assert google.get(SUBSCRIBERS, headers=auth(google)).json == {"subscribers": []}
    assert stand_in.walk("hu-4f1e9c2a7b", 100) == []
    gone = google.delete(f"/v4/{subscriber['name']}", headers=auth(google))
    assert gone.status_code == 404


def test_notifications_go_to_each_automatic_subscriber_of_the_data_type(google, stand_in):
    operation(google, create(google, subscriber_id="steps-only"))
    manual = [{"dataTypes": ["steps"], "subscriptionCreatePolicy": "MANUAL"}]
    operation(google, create(google, "manual", "https://manual.example/hook", configs=manual))
    sleepy = [{"dataTypes": ["sleep"], "subscriptionCreatePolicy": "AUTOMATIC"}]
    operation(google, create(google, "sleep-only", "https://sleep.example/hook", configs=sleepy))
    alex_grants_steps(stand_in)
    assert stand_in.walk("hu-4f1e9c2a7b", 100) == [(ENDPOINT, 204)]


def test_a_subscriber_created_and_never_read_is_settled_before_the_first_notification(
    google, stand_in
):
    create(google)  # its operation never read
    alex_grants_steps(stand_in)
    assert stand_in.walk("hu-4f1e9c2a7b", 100) == [(ENDPOINT, 204)]
    assert len(handshakes(stand_in)) == 2


def test_sandbox_mode_registers_the_apps_subscriber_through_the_same_api(stand_in, google):
    subscriber = stand_in.generated_subscriber(APP.client_id, ENDPOINT)
    stand_in.notifier.send.secret = subscriber.secret
    assert stand_in.generated_subscriber(APP.client_id, ENDPOINT).secret == subscriber.secret
    alex_grants_steps(stand_in)
    assert stand_in.walk("hu-4f1e9c2a7b", 100) == [(ENDPOINT, 204)]
    [listed] = google.get(SUBSCRIBERS, headers=auth(google)).json["subscribers"]
    assert listed["name"] == f"projects/{PROJECT}/subscribers/app"
    assert set(listed["subscriberConfigs"][0]["dataTypes"]) >= {"steps", "sleep"}


# --- docs/webhooks.md's command ------------------------------------------------------------


def readme_registration():
    """docs/webhooks.md's registration block for the real Google: the page, the curl
    command, and the JSON body of its here-document. (The page's block for the stand-in
    is run as written, by tests/test_docs.py.)"""
    page = (Path(__file__).parent.parent / "docs" / "webhooks.md").read_text()
    block = re.search(r"```sh\n(HEALTH_API=https://health.*?)```", page, re.S).group(1)
    command, body = re.search(r"(curl -X POST .*?) <<EOF\n(.*?)\nEOF", block, re.S).groups()
    return page, command.replace("\\\n", " "), body


def test_the_docs_registration_command_for_google_runs_against_the_stand_in(google, stand_in):
    block, command, body = readme_registration()
    values = {
        "HEALTH_API": "",
        "PROJECT": PROJECT,
        "TOKEN": service_token(google).json["access_token"],
        "ENDPOINT": ENDPOINT,
        "GOOGLE_WEBHOOK_SECRET": SECRET,
    }

    def filled(text):
        return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: values[m.group(1) or m.group(2)], text)

    words = shlex.split(filled(command))
    url = words[words.index("-X") + 2]
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    answer = google.post(url, data=filled(body), headers=headers)
    assert answer.status_code == 200, answer.json
    done = google.get("/v4/" + answer.json["name"], headers=auth(google)).json
    assert done["response"]["endpointUri"] == ENDPOINT
    assert "cloud-platform" in block and "client_credentials" in block  # which token, said


def test_a_page_token_that_is_not_one_is_invalid_argument(google):
    bad = base64.urlsafe_b64encode(b"\xff\xfe").decode()
    answer = google.get(SUBSCRIBERS, query_string={"pageToken": bad}, headers=auth(google))
    assert answer.status_code == 400
