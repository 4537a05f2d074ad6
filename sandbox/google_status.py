"""Google's error shape for its APIs: a google.rpc.Status, {"error": {"code", "message",
"status", "details": [ErrorInfo]}}. The stand-in's OAuth endpoints answer RFC 6749's shape
instead (google.py)."""

from .common import OAuthError


class ApiError(OAuthError):
    """google.rpc.Status: its HTTP code, its status name, a message, and an ErrorInfo reason."""

    def __init__(self, code, status, message, reason=None, headers=None):
        super().__init__(code, status, message, headers)
        self.reason = reason
