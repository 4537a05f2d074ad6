"""Sign in with Fitbit: a small WSGI app that walks through OAuth 2.0 with Fitbit.

Run it with `make run` (which sets up .venv, then runs `.venv/bin/python fitbit_oauth_app.py`)
and open http://localhost:4000. It speaks two dialects: Fitbit's legacy Web API (PROVIDER=fitbit,
the default) and its successor, the Google Health API (PROVIDER=google). The OAuth steps they
share are in oauth.py, what each does its own way in fitbit_legacy.py and google_health.py,
the database in models.py; this file is the web app that glues them together: routes,
browser sessions, CSRF, flash messages, the signed-in page with its cache of API answers, and
error pages.
"""

import argparse
import functools
import logging
import math
import os
import re
import secrets
from urllib.parse import parse_qsl

try:
    import werkzeug  # noqa: F401 (the first of the packages in requirements.txt)
except ModuleNotFoundError:  # started with a Python that has none of them, such as the system's
    raise SystemExit(
        "This Python lacks the app's packages. Run `make run`, which installs them into .venv "
        "and starts the app, or run `.venv/bin/python fitbit_oauth_app.py` once it exists."
    ) from None

from peewee import OperationalError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    NotFound,
    ServiceUnavailable,
)
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.serving import run_simple
from werkzeug.utils import redirect
from werkzeug.wrappers import Request as BaseRequest

import oauth
import sandbox_mode
import tracing
from dashboard import Dashboard
from middleware import CallbackLogHandler, security_headers, with_security_headers
from models import (
    PendingSignIn,
    TraceEntry,
    User,
    db,
    open_database,
    shared_secret,
)
from pages import RETRY_AFTER_SECONDS, Pages
from providers import PROVIDERS, account
from sessions import Sessions, origin_for_cookie, same_secret
from settings import config_from_env, start_up_lines
from token_store import UserTokenStore

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PORT = 4000
USERS_PER_PAGE = 50
# Longer than any real code or state, short enough that nothing oversized reaches Fitbit.
MAX_PARAM_LENGTH = 512
# The largest body any form of this app needs (a CSRF token); anything bigger is refused
# with a 413 before it is read.
MAX_BODY_BYTES = 16 * 1024
log = logging.getLogger("fitbit_oauth_app")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


# --- Small helpers ---------------------------------------------------------------------


class Request(BaseRequest):
    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES
    urls = None  # the URL map bound to this request: matches paths, builds links
    browser = None  # this browser's BrowserSession, once it has one
    new_cookie = None  # a new session id to hand to the browser with this response

    def __init__(self, environ):
        super().__init__(environ)
        self.trace_steps = []  # (title, shown) for this browser's trace, kept at the end


def callback_params(request):
    """The callback's query, decoded strictly. It is untrusted input, and werkzeug's own
    parser is lenient (it keeps an undecodable %FF as the three characters "%FF")."""
    try:
        pairs = parse_qsl(
            request.query_string.decode("ascii"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=10,
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The address you were sent back to is malformed.") from None
    params = {}
    for name, value in pairs:
        if name in params:
            raise BadRequest(f"The {name} parameter appears more than once.")
        if len(value) > MAX_PARAM_LENGTH:
            raise BadRequest(f"The {name} parameter is too long.")
        # RFC 6749 appendix A: code, state and error are printable ASCII (VSCHAR).
        if not value.isascii() or not value.isprintable():
            raise BadRequest(f"The {name} parameter has characters no provider sends.")
        params[name] = value
    return params


class FitbitOAuthApp:
    def __init__(self, config):
        self.config = config
        self.client = config.client
        self.dialect = config.client.dialect  # fitbit_legacy or google_health
        with db.connection_context():
            self.sessions = Sessions(config.secret_key or shared_secret("session-key"))
        self.dashboard = Dashboard(self.client, UserTokenStore(), config.cache_seconds)
        self.pages = Pages(config)
        self.url_map = Map(
            [
                Rule("/", endpoint="index", methods=["GET"]),
                Rule("/auth", endpoint="auth", methods=["GET"]),
                Rule("/auth/callback", endpoint="callback", methods=["GET"]),
                Rule("/auth/revoke", endpoint="revoke", methods=["POST"]),
                Rule("/logout", endpoint="logout", methods=["POST"]),
                Rule("/users", endpoint="users", methods=["GET"]),
                Rule("/trace", endpoint="trace", methods=["GET"]),
            ]
        )

    # Pages --------------------------------------------------------------------------

    def on_index(self, request):
        user = request.browser.user if request.browser else None
        if user is None:
            return self.pages.render(request, "index.html")
        shown = {"user": user, "display_name": user.display_name, "notes": []}
        if user.connected and user.provider != self.dialect.KEY:
            # Moving to Google Health: the old tokens speak the other dialect. The user is
            # asked to connect again, not made to (Google's migration guide says: nudge).
            other = PROVIDERS[user.provider]
            shown["notes"].append(
                f"You connected through {other.TITLE}, and this app now uses "
                f"{self.dialect.TITLE}. Connect again to see your data."
            )
            shown["ask_again"] = True
        elif user.connected:
            try:
                shown.update(self.dashboard.show(user, shown["notes"]))
            except oauth.ReconnectNeeded:
                request.browser.add_flash(
                    f"{self.dialect.NAME} no longer accepts this app's access. Connect again."
                )
                shown["user"] = User.get_by_id(user.id)  # its tokens are gone now
        return self.pages.render(request, "index.html", **shown)

    def on_auth(self, request):
        """Step 1: send the browser to the provider's consent page."""
        if not self.config.configured:
            missing = self.dialect.SETTINGS["client_secret"]
            raise ServiceUnavailable(f"{missing} is not set. See the README.")
        home = origin_for_cookie(request, self.client.redirect_uri)
        if home is not None:
            return redirect(home + request.full_path.rstrip("?"), code=302)
        address = self.sessions.admit_sign_in(request)
        browser = self.sessions.ensure(request)
        state, verifier = oauth.new_state(), oauth.new_code_verifier()
        # A new sign-in starts a new trace: what /trace shows this browser from now on.
        browser.trace = secrets.token_hex(16)
        with db.atomic():
            # One sign-in in flight per browser: starting again replaces the last one.
            PendingSignIn.delete().where(PendingSignIn.session == browser).execute()
            PendingSignIn.create(
                session=browser, state=state, code_verifier=verifier, client=address
            )
            browser.save()
        # Google hands out a refresh token only on a consent: forced unless this browser's
        # user is known to hold one already.
        user = browser.user
        holds = user is not None and user.connected and user.provider == self.dialect.KEY
        url = oauth.authorize_url(self.client, state, verifier, holds_refresh_token=holds)
        self.note(request, *tracing.authorize_step(url, verifier))
        return redirect(url, code=302)

    def on_callback(self, request):
        """Step 2: the provider sends the browser back here with a code (or an error)."""
        params = callback_params(request)
        code, error = params.get("code"), params.get("error")
        pending = self.claim_sign_in(request, params.get("state"))
        self.note(request, *tracing.callback_step(params))
        who = self.dialect.NAME

        if error is not None:
            # Only a fixed text is shown: error_description is the other side's words.
            if error == "access_denied":
                request.browser.add_flash(
                    f"You chose not to connect your {who} account. Nothing was stored."
                )
            else:
                request.browser.add_flash(f"{who} did not complete the sign-in ({error}).")
            return self.clean_redirect(request)
        if not code:
            raise BadRequest("The answer has no authorization code.")

        tokens = oauth.exchange_code(self.client, code, pending.code_verifier)
        try:
            person = self.dialect.identify(self.client, tokens)
        except oauth.Unidentified:
            # Nobody to file the tokens under: give them back rather than keep them.
            self.revoke_quietly(tokens.refresh_token or tokens.access_token)
            raise
        user = User.sign_in(person, tokens)
        if user is None:
            # Google sent no refresh token (the user had consented before) and none is kept
            # here. Revoking ends that old grant at Google, and signed out, this browser's
            # next sign-in asks for consent: either way the next answer brings a new one.
            self.revoke_quietly(tokens.access_token)
            self.sessions.start(request, carry_flashes=True)
            request.browser.add_flash(
                f"{who} did not send the token this app needs to stay connected. Sign in "
                "again, and you will be asked to allow access once more."
            )
            return self.clean_redirect(request)
        for key, (data, headers) in person.answers.items():
            self.dashboard.keep_answer(user, key, data, headers)
        log.info("%s: signed in, scope %r", account(user), tokens.scope)
        # A new session id at sign-in, so an id planted before it is worth nothing.
        self.sessions.start(request, user=user, carry_flashes=True)
        # The page itself greets the user by name: the flash only says what happened.
        request.browser.add_flash(
            f"You are signed in with {who}.",
            link=(request.urls.build("trace"), "See what just happened"),
        )
        return self.clean_redirect(request)

    def revoke_quietly(self, token):
        """Hand back tokens this app will not keep; a failure changes nothing for the user."""
        try:
            oauth.revoke(self.client, token)
        except oauth.ProviderError as error:
            log.warning("Unkept tokens were not revoked: %s", error)

    def on_trace(self, request):
        """What just happened: this browser's last sign-in, exchange by exchange, masked."""
        trace = request.browser.trace if request.browser else None
        steps = TraceEntry.steps(trace) if trace else []
        return self.pages.render(request, "trace.html", steps=steps)

    def note(self, request, title, shown):
        """Add a step to this browser's trace, written when the request is done: never
        between spending a refresh token and storing the pair it bought."""
        request.trace_steps.append((title, shown))

    def keep_trace(self, request):
        """A trace is an aid for the reader: failing to keep one (a busy database) must
        never fail the page it describes."""
        trace = request.browser.trace if request.browser else None
        if trace and request.trace_steps:
            try:
                for title, shown in request.trace_steps:
                    TraceEntry.add(trace, title, shown)
            except Exception:
                log.warning("A step of the trace was not kept", exc_info=True)

    def observe(self, request, *exchange):
        self.note(request, *tracing.exchange_step(*exchange))

    def on_users(self, request):
        page = request.args.get("page", "1")
        if not re.fullmatch(r"[1-9][0-9]{0,5}", page):
            raise BadRequest("The page number must be a whole number, starting at 1.")
        page = int(page)
        pages = max(1, math.ceil(User.select().count() / USERS_PER_PAGE))
        if page > pages:
            raise NotFound(f"There is no page {page}: the users fit on {pages}.")
        # Only the columns the page shows: making all of them into Python values, for 50
        # rows, would cost more than the query itself.
        columns = [
            User.display_name,
            User.provider,
            User.fitbit_id,
            User.health_user_id,
            User.refresh_token,
            User.expires_at,
        ]
        users = (
            User.select(*columns, User.last_sync_at)
            .order_by(User.created_at, User.id)
            .paginate(page, USERS_PER_PAGE)
        )
        return self.pages.render(request, "users.html", users=users, page=page, pages=pages)

    def on_revoke(self, request):
        """Disconnect: revoke at the provider, and forget the tokens here whatever it says."""
        self.sessions.check_csrf(request)
        user = request.browser.user
        if user is not None and user.connected:
            try:
                message = self.revoke_for(user)
            finally:
                User.clear_tokens(user.id)
            request.browser.add_flash(message)
        return redirect(request.urls.build("index"), code=302)

    def revoke_for(self, user):
        """Revoke the user's grant where it was given; the words that say how it went."""
        provider = PROVIDERS[user.provider]
        site = provider.SITE_FOR_REVOKING
        if provider is not self.dialect:
            # Tokens of the other dialect go nowhere: this app no longer talks to that API.
            log.info("%s: disconnected; tokens of %s not sent", account(user), provider.TITLE)
            return f"Disconnected here. You can revoke access at {provider.NAME} at {site}."
        try:
            oauth.revoke(self.client, user.refresh_token)
        except oauth.ProviderError as error:
            log.warning("%s: disconnected, but revoking failed: %s", account(user), error)
            return (
                f"Disconnected here, but {provider.NAME} did not confirm. You can revoke "
                f"access yourself at {site}."
            )
        log.info("%s: disconnected, access revoked at %s", account(user), provider.NAME)
        return f"Disconnected. {provider.NAME} has revoked this app's access."

    def on_logout(self, request):
        self.sessions.check_csrf(request)
        self.sessions.start(request)
        request.browser.add_flash("You are signed out.")
        return redirect(request.urls.build("index"), code=302)

    # Sessions, sign-ins and CSRF ------------------------------------------------------

    def claim_sign_in(self, request, state):
        """Match the callback to the sign-in this browser started (RFC 6749 10.12), and use
        it up, so a replayed or forged callback never reaches the token endpoint."""
        if not state:
            raise BadRequest("The answer has no state parameter.")
        pending = None
        if request.browser is not None:
            pending = PendingSignIn.get_or_none(PendingSignIn.session == request.browser)
        if pending is None or not same_secret(state, pending.state):
            raise BadRequest("This sign-in was not started from this browser, or was already used.")
        if not pending.consume():
            raise BadRequest("This sign-in was already used.")
        if pending.expired:
            raise BadRequest("This sign-in took longer than 10 minutes. Please start again.")
        return pending

    # Responses ------------------------------------------------------------------------

    def clean_redirect(self, request):
        """Leave the callback URL, code and all, out of the address bar, history and any
        Referer header (docs/security.md item 11)."""
        response = redirect(request.urls.build("index"), code=302)
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def dispatch_request(self, request):
        try:
            self.sessions.load(request)
            endpoint, values = request.urls.match()
            response = getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as error:
            if error.code is None or error.code < 400:
                return error  # a routing redirect, such as a missing trailing slash
            response = self.pages.error(request, error.code, error.name, error.description)
            for name, value in error.get_headers(request.environ):
                if name.lower() != "content-type":
                    response.headers[name] = value  # e.g. Allow on a 405
        except oauth.ProviderError as error:
            response = self.pages.provider_error(request, error)
        except oauth.RefreshBusy:
            response = self.pages.refresh_busy(request)
        self.keep_trace(request)
        return self.sessions.set_cookie(request, response)

    def wsgi_app(self, environ, start_response):
        request = Request(environ)
        request.urls = self.url_map.bind_to_environ(environ)
        try:
            with db.connection_context(), oauth.observed(functools.partial(self.observe, request)):
                response = self.dispatch_request(request)
        except OperationalError:
            # Locked by another process past the busy timeout, or unreachable. Whatever was
            # under way was rolled back, and no refresh token is spent without a lease that
            # was written first, so the user's access at the provider is intact.
            log.warning("The database is busy or unavailable on %s", request.path)
            response = self.page_without_database(
                request,
                503,
                "The database is busy",
                "Nothing was lost. Try again in a few seconds.",
                retry_after=RETRY_AFTER_SECONDS,
            )
        except Exception:
            log.exception("Unexpected error on %s", request.path)
            message = "Something went wrong on our side. Nothing was stored. Try again."
            response = self.page_without_database(request, 500, "Server error", message)
        return response(environ, start_response)

    def page_without_database(self, request, status, title, message, retry_after=None):
        """An error page that neither reads nor writes the database (no flashes, no user)."""
        request.browser = None
        return self.sessions.set_cookie(
            request, self.pages.error(request, status, title, message, retry_after)
        )

    def __call__(self, environ, start_response):
        return self.wsgi_app(environ, start_response)


def create_app(config):
    open_database(config.database_url)
    if config.sandbox:
        config, stand_ins = sandbox_mode.register(config)
    app = FitbitOAuthApp(config)
    app.wsgi_app = SharedDataMiddleware(app.wsgi_app, {"/static": os.path.join(HERE, "static")})
    if config.sandbox:
        app.wsgi_app = DispatcherMiddleware(app.wsgi_app, stand_ins)
    headers = security_headers(config.client.api_url, config.client.userinfo_url)
    app.wsgi_app = with_security_headers(app.wsgi_app, headers)
    if config.trust_proxy:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)
    return app


def app_from_env(environ=None):
    """The app as the environment configures it, for a WSGI server that starts its own
    workers: gunicorn 'fitbit_oauth_app:app_from_env()'. The port only sets the default
    redirect URI, so PORT should be the port the server listens on."""
    environ = os.environ if environ is None else environ
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    config = config_from_env(environ, int(environ.get("PORT") or DEFAULT_PORT))
    for line in start_up_lines(config):
        log.log(logging.WARNING if line.startswith("WARNING") else logging.INFO, line)
    return create_app(config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

    config = config_from_env(os.environ, args.port)
    app = create_app(config)
    print(f" * Sign in with Fitbit: open http://{args.host}:{args.port}")
    for line in start_up_lines(config):
        print(f" * {line}")
    # Threaded, so the page can wait on Fitbit while other requests are served; the
    # debugger stays off because it runs arbitrary code for whoever can reach the port.
    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        use_debugger=False,
        use_reloader=False,
        request_handler=CallbackLogHandler,
    )


if __name__ == "__main__":
    main()
