"""A local stand-in for Google: its OAuth 2.0 server, OpenID Connect's userinfo, and the
Google Health API endpoints the app reads.

It follows ../shared/google-health-api.md in the project notes and refuses what Google would
refuse: the authorization server is in google_authorization.py, the resource servers in
google_resources.py. OAuth errors have RFC 6749 5.2's shape; the Health API's, and those of
unknown paths, are google.rpc.Status objects.
"""

import os
import secrets
from datetime import timedelta

from .common import StandIn, as_json, now
from .google_authorization import (
    AUTHORIZE_PATH,
    CODE_LIFETIME,
    DEFAULT_EXPIRES_IN,
    REVOKE_PATH,
    TOKEN_PATH,
    GoogleAuthorizationServer,
)
from .google_resources import RATE_LIMIT, USERINFO_PATH, ApiError, GoogleResourceServer

# Each request drops at most this many stale entries of each kind.
PRUNE_BATCH = 50


class GoogleStandIn(StandIn):
    """Google's side, as a WSGI app (see common.StandIn for the plumbing)."""

    NAME = "Google"
    MOUNT = "/sandbox/google"  # where the app serves it in sandbox mode
    DEFAULT_EXPIRES_IN = DEFAULT_EXPIRES_IN
    RATE_LIMIT = RATE_LIMIT
    AuthorizationServer = GoogleAuthorizationServer
    ResourceServer = GoogleResourceServer
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
