"""What stands between the app and the network: the security headers on every response,
whoever made it, and a development server whose access log never shows an authorization
code.
"""

from urllib.parse import urlsplit

from werkzeug.serving import WSGIRequestHandler

# docs/security.md item 28: a strict policy; nothing on these pages needs scripts or frames.
# Avatars come from Fitbit's and Google's image hosts, hence https: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' https:; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# On every response this process sends, unless the response set its own: pages, static
# files, error pages and the stand-in's answers alike. Pages hold personal data and
# one-time flashes, so nothing is kept in a cache.
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)


def security_headers(*urls):
    """SECURITY_HEADERS for an app whose API is at these URLs. A stand-in run on its own
    serves its avatars over plain http from another port, so such an origin may show images
    too."""
    origins = sorted({f"http://{urlsplit(url).netloc}" for url in urls if url.startswith("http:")})
    if not origins:
        return SECURITY_HEADERS
    images = f"img-src 'self' https: {' '.join(origins)};"
    policy = CONTENT_SECURITY_POLICY.replace("img-src 'self' https:;", images)
    return (("Content-Security-Policy", policy), *SECURITY_HEADERS[1:])


def with_security_headers(wsgi_app, headers_to_add=SECURITY_HEADERS):
    """WSGI middleware: the security headers on every response, whoever made it."""

    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            # Static files come with "Cache-Control: public"; nothing here is cached.
            headers = [(name, value) for name, value in headers if name.lower() != "cache-control"]
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in headers_to_add if h[0].lower() not in present)
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start)

    return app


# The paths whose query is never logged.
REDACTED_QUERIES = ("/auth/callback", "/webhooks/fitbit")


class CallbackLogHandler(WSGIRequestHandler):
    """The development server logs every request line. The callback's query carries the
    authorization code, and Fitbit's webhook handshake the verification code, so both are
    blanked out of the access log (docs/security.md item 16, and item 57 for the code)."""

    def log_request(self, code="-", size="-"):
        # No path at all when the request line itself was refused (400, 414, 505).
        path, sep, _ = getattr(self, "path", "").partition("?")
        if sep and path.endswith(REDACTED_QUERIES):
            original, self.path = self.path, f"{path}?[redacted]"
            try:
                return super().log_request(code, size)
            finally:
                self.path = original
        return super().log_request(code, size)
