"""Google's subscribers API at the stand-in, as ../shared/google-health-api.md ("Subscribers,
as a client registers them") describes it: a Cloud project's webhook subscribers, created,
listed, changed and deleted, each change a long-running operation.

    POST   /v4/projects/{project}/subscribers[?subscriberId=]   create
    GET    /v4/projects/{project}/subscribers[?pageSize=&pageToken=]   list
    GET    /v4/projects/{project}/subscribers/{id}
    PATCH  /v4/projects/{project}/subscribers/{id}[?updateMask=]
    DELETE /v4/projects/{project}/subscribers/{id}[?force=true]
    GET    /v4/operations/{id}   (also under /v4/projects/{project}/operations/{id})

Google wants a service account's token with the `cloud-platform` scope, never a user's.
The stand-in has no service accounts: a registered client's own credentials stand in for
one (grant_type=client_credentials, scope cloud-platform, at its token endpoint), and its
project is the number its client id starts with, as a Google client id's does.

A create, or a change of the endpoint or its secret, is done only once the endpoint passes
Google's handshake (stand_in.handshake): when the operation is read, or before the first
notification, whichever comes first. An endpoint that fails it ends the operation with
FAILED_PRECONDITION, and nothing changes.
"""

import base64
import binascii
import json
import re
import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from werkzeug.routing import Rule

from .common import OAuthError, Role, as_json, now, same
from .google_status import ApiError
from .store import Subscriber

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
SERVICE_TOKEN_LIFETIME = timedelta(hours=1)
SUBSCRIBERS = "/v4/projects/<project>/subscribers"
POLICIES = ("AUTOMATIC", "MANUAL")
# AIP-122: a resource id of lowercase letters, digits and hyphens, starting with a letter.
RESOURCE_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
DATA_TYPE = re.compile(r"[a-z][a-z0-9-]{0,63}")
UPDATABLE = ("endpointUri", "endpointAuthorization", "subscriberConfigs")
MAX_PAGE = 1000
FAILED_VERIFICATION = {
    "code": 9,  # FAILED_PRECONDITION
    "message": "The endpoint did not pass verification: it must answer 201 to a request "
    "with the secret, and 401 or 403 to one without.",
    "details": [],
}


def project_of(client_id):
    """A client's Cloud project: the number a Google client id starts with."""
    return client_id.split("-", 1)[0]


def invalid(message):
    return ApiError(400, "INVALID_ARGUMENT", message)


def timestamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class GoogleServiceTokens:
    """The token endpoint's grant for the subscribers API (a mixin of the authorization
    server): a registered client's credentials, for the `cloud-platform` scope alone."""

    OTHER_GRANTS = {"client_credentials": "service_token"}

    def service_token(self, form, client):
        if form.get("scope", "").split() != [CLOUD_PLATFORM]:
            raise OAuthError(400, "invalid_scope", f"Only {CLOUD_PLATFORM} is granted here.")
        token = "ya29.c." + secrets.token_urlsafe(48)
        expires_at = now() + SERVICE_TOKEN_LIFETIME
        self.store.service_tokens.issue(token, client.client_id, CLOUD_PLATFORM, expires_at)
        seconds = int(SERVICE_TOKEN_LIFETIME.total_seconds())
        return {"access_token": token, "expires_in": seconds, "token_type": "Bearer"}


class GoogleSubscribersApi(Role):
    """The subscribers API, a role of the Google stand-in (see common.StandIn)."""

    RULES = [
        Rule(SUBSCRIBERS, endpoint="subscribers", methods=["GET", "POST"]),
        Rule(SUBSCRIBERS + "/<subscriber_id>", endpoint="subscriber", methods=["GET"]),
        Rule(SUBSCRIBERS + "/<subscriber_id>", endpoint="patch", methods=["PATCH"]),
        Rule(SUBSCRIBERS + "/<subscriber_id>", endpoint="delete", methods=["DELETE"]),
        Rule("/v4/operations/<operation_id>", endpoint="operation", methods=["GET"]),
        Rule(
            "/v4/projects/<project>/operations/<operation_id>",
            endpoint="project_operation",
            methods=["GET"],
        ),
    ]

    # --- Who may call it ----------------------------------------------------------------

    def caller(self, request, project=None):
        """The project a service token's client belongs to; it must be `project`."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        found = self.store.service_tokens.get(token) if scheme.lower() == "bearer" else None
        if found is None:
            if token and self.store.grants.access_token(token) is not None:
                raise ApiError(
                    403,
                    "PERMISSION_DENIED",
                    "Request had insufficient authentication scopes.",
                    "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                )  # a user's token, never enough
            raise ApiError(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        own = project_of(found[0])
        if project is not None and project != own:
            raise ApiError(403, "PERMISSION_DENIED", "The caller does not have permission.")
        return own

    # --- Subscribers --------------------------------------------------------------------

    def on_subscribers(self, request, project):
        self.caller(request, project)
        if request.method == "GET":
            return self.listed(request, project)
        body = json_body(request)
        subscriber_id = request.args.get("subscriberId") or "s-" + secrets.token_hex(6)
        if not RESOURCE_ID.fullmatch(subscriber_id):
            raise invalid("subscriberId must be 1 to 63 lowercase letters, digits or hyphens.")
        endpoint = endpoint_uri(body.get("endpointUri"))
        secret = secret_of(body.get("endpointAuthorization"))
        configs = subscriber_configs(body.get("subscriberConfigs", []))
        operation = self.create(project, subscriber_id, endpoint, secret, configs)
        return as_json(self.operation_resource(operation))

    def create(self, project, subscriber_id, endpoint, secret, configs):
        """A subscriber to be: the operation that makes it, once its endpoint passes the
        handshake. (Sandbox mode registers the app's subscriber through this too.)"""
        name = f"projects/{project}/subscribers/{subscriber_id}"
        if self.store.project_subscribers.get(name) is not None or self.pending_for(name):
            raise ApiError(409, "ALREADY_EXISTS", f"{name} already exists.")
        moment = timestamp(now())
        resource = {
            "name": name,
            "endpointUri": endpoint,
            "subscriberConfigs": configs,
            "endpointAuthorization": {"secretSet": True},
            "state": "ACTIVE",
            "createTime": moment,
            "updateTime": moment,
        }
        return self.start(project, name, "create", resource, secret)

    def pending_for(self, name):
        project = name.split("/")[1]
        return [
            operation
            for operation in map(self.store.operations.get, self.store.operations.pending(project))
            if operation["subscriber"] == name
        ]

    def listed(self, request, project):
        try:
            size = min(int(request.args.get("pageSize") or 50), MAX_PAGE)
            after = base64.urlsafe_b64decode(request.args.get("pageToken", "")).decode()
        except (ValueError, binascii.Error, UnicodeError):
            raise invalid("Bad pageSize or pageToken.") from None
        if size < 1:
            raise invalid("pageSize must be positive.")
        found = self.store.project_subscribers.of_project(project, after, size + 1)
        page = {"subscribers": [resource for resource, _ in found[:size]]}
        if len(found) > size:
            page["nextPageToken"] = base64.urlsafe_b64encode(
                found[size - 1][0]["name"].encode()
            ).decode()
        return as_json(page)

    def existing(self, project, subscriber_id):
        name = f"projects/{project}/subscribers/{subscriber_id}"
        found = self.store.project_subscribers.get(name)
        if found is None:
            raise ApiError(404, "NOT_FOUND", f"{name} was not found.")
        return found

    def on_subscriber(self, request, project, subscriber_id):
        self.caller(request, project)
        return as_json(self.existing(project, subscriber_id)[0])

    def on_patch(self, request, project, subscriber_id):
        """The fields `updateMask` names (all those sent, without one) change; a new
        endpoint or secret must pass the handshake first. Output-only fields are ignored."""
        self.caller(request, project)
        resource, secret = self.existing(project, subscriber_id)
        body = json_body(request)
        mask = request.args.get("updateMask")
        fields = mask.split(",") if mask else [f for f in UPDATABLE if body.get(f) is not None]
        if any(field not in UPDATABLE for field in fields):
            raise invalid(f"updateMask may name {', '.join(UPDATABLE)}.")
        changed = dict(resource)
        if "endpointUri" in fields:
            changed["endpointUri"] = endpoint_uri(body.get("endpointUri"))
        if "endpointAuthorization" in fields:
            secret = secret_of(body.get("endpointAuthorization"))
        if "subscriberConfigs" in fields:
            changed["subscriberConfigs"] = subscriber_configs(body.get("subscriberConfigs"))
        changed["updateTime"] = timestamp(now())
        return as_json(self.patch(project, changed, secret))

    def patch(self, project, changed, secret):
        """The operation that changes a subscriber to `changed` (and `secret`), settled at
        once unless its endpoint or secret changed."""
        before, kept_secret = self.store.project_subscribers.get(changed["name"])
        verify = changed["endpointUri"] != before["endpointUri"] or not same(secret, kept_secret)
        operation = self.start(project, changed["name"], "patch", changed, secret, verify)
        return self.operation_resource(operation if verify else self.settle(operation))

    def on_delete(self, request, project, subscriber_id):
        self.caller(request, project)
        resource, secret = self.existing(project, subscriber_id)
        operation = self.start(project, resource["name"], "delete", None, secret, verify=False)
        return as_json(self.operation_resource(self.settle(operation)))

    # --- Operations ---------------------------------------------------------------------

    def start(self, project, name, action, resource, secret, verify=True):
        operation_name = f"operations/{secrets.token_hex(10)}"
        change = {"resource": resource, "secret": secret, "verify": verify}
        self.store.operations.start(operation_name, project, name, action, change)
        return self.store.operations.get(operation_name)

    def on_operation(self, request, operation_id):
        project = self.caller(request)
        operation = self.store.operations.get(f"operations/{operation_id}")
        if operation is None or operation["project"] != project:
            raise ApiError(404, "NOT_FOUND", f"operations/{operation_id} was not found.")
        return as_json(self.operation_resource(self.settle(operation)))

    def on_project_operation(self, request, project, operation_id):
        self.caller(request, project)
        return self.on_operation(request, operation_id)

    def settle(self, operation):
        """The operation done, if it is not: after the handshake, when its change needs
        one. As it stands then."""
        if operation["done"]:
            return operation
        change = operation["change"]
        passed = True
        if change["verify"]:
            endpoint = change["resource"]["endpointUri"]
            passed = self.stand_in.handshake(
                Subscriber(operation["project"], endpoint, change["secret"])
            )
        if not passed:
            result = {"error": FAILED_VERIFICATION}
        else:
            result = {"response": change["resource"] or {}}
        self.store.operations.finish(operation, result, passed)
        return self.store.operations.get(operation["name"])

    @staticmethod
    def operation_resource(operation):
        answer = {
            "name": operation["name"],
            "metadata": {"target": operation["subscriber"], "verb": operation["action"]},
            "done": operation["done"],
        }
        if operation["done"]:
            answer.update(operation["result"])
        return answer

    # --- For the stand-in's own use -----------------------------------------------------

    def ready(self, project, data_type):
        """The project's subscribers that hear of `data_type` changes (AUTOMATIC ones: the
        stand-in keeps no per-user subscriptions), its operations settled first, as
        Subscriber records."""
        for name in self.store.operations.pending(project):
            self.settle(self.store.operations.get(name))
        for resource, secret in self.store.project_subscribers.of_project(project):
            configs = resource.get("subscriberConfigs", [])
            if any(
                data_type in config["dataTypes"]
                and config.get("subscriptionCreatePolicy") == "AUTOMATIC"
                for config in configs
            ):
                yield Subscriber(project, resource["endpointUri"], secret, resource["name"], True)

    def register(self, project, subscriber_id, endpoint, new_secret, configs):
        """The app's own subscriber in sandbox mode, through the same code as the API:
        created once, its endpoint changed when the app moves. A Subscriber record, its
        handshake still to come until the first notification."""
        name = f"projects/{project}/subscribers/{subscriber_id}"
        found = self.store.project_subscribers.get(name)
        pending = self.pending_for(name)
        if found is None and pending:
            change = pending[-1]["change"]
            return Subscriber(project, change["resource"]["endpointUri"], change["secret"], name)
        if found is None:
            operation = self.create(project, subscriber_id, endpoint, new_secret(), configs)
            return Subscriber(project, endpoint, operation["change"]["secret"], name)
        resource, secret = found
        if resource["endpointUri"] != endpoint:
            self.patch(project, {**resource, "endpointUri": endpoint}, secret)
            return Subscriber(project, endpoint, secret, name)
        return Subscriber(project, endpoint, secret, name, verified=True)

    def subscribers_of(self, project):
        """Every subscriber of the project, settled or not, for the walk page."""
        kept = [
            Subscriber(project, resource["endpointUri"], secret, resource["name"], True)
            for resource, secret in self.store.project_subscribers.of_project(project)
        ]
        waiting = [
            Subscriber(project, op["change"]["resource"]["endpointUri"], "", op["subscriber"])
            for op in map(self.store.operations.get, self.store.operations.pending(project))
            if op["change"]["resource"]
        ]
        return kept + waiting


# --- Reading a request ------------------------------------------------------------------------


def json_body(request):
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except (ValueError, RecursionError):
        raise invalid("The body is not JSON.") from None
    if not isinstance(body, dict):
        raise invalid("The body must be a Subscriber object.")
    return body


def endpoint_uri(value):
    """HTTPS, as Google requires; plain http only to this machine, for an app beside the
    stand-in."""
    if not isinstance(value, str) or len(value) > 2048:
        raise invalid("endpointUri is required.")
    parts = urlsplit(value)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.netloc or parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise invalid("endpointUri must be an https URL.")
    return value


def secret_of(value):
    secret = value.get("secret") if isinstance(value, dict) else None
    if not isinstance(secret, str) or not secret.strip() or len(secret) > 1024:
        raise invalid("endpointAuthorization.secret is required.")
    return secret


def subscriber_configs(value):
    if not isinstance(value, list):
        raise invalid("subscriberConfigs must be a list.")
    configs = []
    for config in value:
        types = config.get("dataTypes") if isinstance(config, dict) else None
        policy = config.get("subscriptionCreatePolicy") if isinstance(config, dict) else None
        if not isinstance(types, list) or not types:
            raise invalid("Each subscriberConfig needs dataTypes.")
        if not all(isinstance(name, str) and DATA_TYPE.fullmatch(name) for name in types):
            raise invalid("A data type is named like steps or daily-resting-heart-rate.")
        if policy not in POLICIES:
            raise invalid(f"subscriptionCreatePolicy must be one of {', '.join(POLICIES)}.")
        configs.append({"dataTypes": types, "subscriptionCreatePolicy": policy})
    return configs
