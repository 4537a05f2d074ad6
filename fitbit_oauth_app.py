"""Sign in with Fitbit: a small WSGI app that walks through OAuth 2.0 with Fitbit.

Run it with `make run` (which sets up .venv, then runs `.venv/bin/python fitbit_oauth_app.py`)
and open http://localhost:4000. It speaks two dialects: Fitbit's legacy Web API (PROVIDER=fitbit,
the default) and its successor, the Google Health API (PROVIDER=google).

This file is the web app: the URL map, then one view per page in the order a sign-in runs
through them (the steps are numbered as in docs/walkthrough.md: 1 to 7, 9 and 10; step 8
is in oauth.py), then the pages beside the lesson, dispatch and start-up. The OAuth steps
are in oauth.py, the round trip to the consent page and back in sign_ins.py, what each
provider does its own way in fitbit_legacy.py and google_health.py, and each other job in
a module named for it.
"""

import argparse
import json
import logging
import os
import re
from functools import partial

try:
    import werkzeug  # noqa: F401 (the first of the packages in requirements.txt)
except ModuleNotFoundError:  # started with a Python that has none of them, such as the system's
    raise SystemExit(
        "This Python lacks the app's packages. Run `make run`, which installs them into .venv "
        "and starts the app, or run `.venv/bin/python fitbit_oauth_app.py` once it exists."
    ) from None

from peewee import OperationalError
from werkzeug.exceptions import (
    BadHost,
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
)
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.middleware.shared_data import SharedDataMiddleware
from werkzeug.routing import Map, Rule
from werkzeug.serving import run_simple
from werkzeug.utils import redirect
from werkzeug.wrappers import Request as BaseRequest
from werkzeug.wrappers import Response

import callback
import disconnect
import encryption
import oauth
import sandbox_mode
import token_store
import tracing
from dashboard import PROFILE_WORDS, Dashboard
from database import connection_when_needed, open_database
from kept_pages import KeptPages
from middleware import CallbackLogHandler, security_headers, with_security_headers
from models import User, db, shared_secret
from my_data import MyData
from pages import Pages
from panels import PANELS
from providers import account, dialect_of
from sessions import Sessions, origin_for_cookie
from settings import config_from_env, port_setting, start_up_lines
from sign_ins import SignIns
from token_store import UserTokenStore
from webhooks import Webhooks

HERE = os.path.dirname(os.path.abspath(__file__))
USERS_PER_PAGE = 50
# The largest body any form of this app needs (a CSRF token); anything bigger is refused
# with a 413 before it is read.
MAX_BODY_BYTES = 16 * 1024
HTML = "text/html; charset=utf-8"
log = logging.getLogger("fitbit_oauth_app")
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


# --- The application -------------------------------------------------------------------


class Request(BaseRequest):
    max_content_length = MAX_BODY_BYTES
    max_form_memory_size = MAX_BODY_BYTES
    urls = None  # the URL map bound to this request: matches paths, builds links
    browser = None  # this browser's BrowserSession, once it has one
    new_cookie = None  # a new session id to hand to the browser with this response

    def __init__(self, environ):
        super().__init__(environ)
        self.trace_steps = []  # (title, shown) for this browser's trace, kept at the end

    def note(self, title, shown):
        """Add a step to this browser's trace, written when the request is done: never
        between spending a refresh token and storing the pair it bought."""
        self.trace_steps.append((title, shown))

    def keep_trace(self):
        """A trace is an aid for the reader: failing to keep one (a busy database) must
        never fail the page it describes."""
        trace = self.browser.trace if self.browser else None
        if trace and self.trace_steps:
            try:
                for title, shown in self.trace_steps:
                    token_store.keep_step(trace, title, shown)
            except Exception:
                log.warning("A step of the trace was not kept", exc_info=True)


class FitbitOAuthApp:
    def __init__(self, config):
        self.config = config
        self.client = config.client
        self.dialect = config.client.dialect  # fitbit_legacy or google_health
        self.kinds = {kind.panel: kind for kind in self.dialect.DATA}  # what the page can show
        self.url_map = Map(
            [
                Rule("/", endpoint="index", methods=["GET"]),
                Rule("/auth", endpoint="auth", methods=["GET"]),
                Rule("/auth/callback", endpoint="callback", methods=["GET"]),
                Rule("/auth/revoke", endpoint="revoke", methods=["POST"]),
                Rule("/logout", endpoint="logout", methods=["POST"]),
                Rule("/auth/more", endpoint="more", methods=["POST"]),
                Rule("/trace", endpoint="trace", methods=["GET"]),
                Rule("/users", endpoint="users", methods=["GET"]),
                # What the app holds about the signed-in user: downloaded, or deleted.
                Rule("/my-data", endpoint="my_data", methods=["GET"]),
                Rule("/my-data/<panel>.csv", endpoint="my_data_csv", methods=["GET"]),
                Rule("/my-data/delete", endpoint="delete", methods=["GET", "POST"]),
                # Where the provider says that a user's data changed (see webhooks.py).
                Rule(
                    f"/webhooks/{self.dialect.KEY}",
                    endpoint="webhook",
                    methods=self.dialect.WEBHOOK_METHODS,
                ),
            ]
        )
        with db.connection_context():
            self.sessions = Sessions(config.secret_key or shared_secret("session-key"))
        self.pages = Pages(config)
        tokens = UserTokenStore()
        self.dashboard = Dashboard(self.client, tokens, config.cache_seconds, self.pages.panel)
        self.kept_pages = KeptPages(config.cache_seconds)
        self.webhooks = Webhooks(self.client, config.webhooks, tokens)
        self.sign_ins = SignIns(config, self.sessions, self.dashboard, self.webhooks)
        self.my_data = MyData(self.client, self.webhooks)

    def on_index(self, request):
        """Step 1: the home page, with a link to /auth; once signed in, step 7."""
        user = request.browser.user if request.browser else None
        if user is None:
            return self.pages.render(request, "index.html")
        return self.signed_in_page(request, user)

    def on_auth(self, request):
        """Step 2: send the browser to the provider's consent page."""
        home = origin_for_cookie(request, self.client.redirect_uri)
        if home is not None:
            return redirect(home + request.full_path.rstrip("?"), code=302)
        return self.sign_ins.begin(request)

    def on_callback(self, request):
        """Steps 4 to 6: the provider sends the browser back here with a code (or an error);
        the code buys tokens, the tokens say who the user is, and the user is signed in.
        The answer to a consent round for one kind of data more (step 10) ends in
        SignIns.widen() (sign_ins.py, where the round trips are)."""
        who = self.dialect.NAME
        params = callback.params(request)
        try:
            pending = callback.claim_sign_in(request.browser, params.get("state"))
        except BadRequest:
            if request.browser is None or request.browser.user is None:
                raise
            # Back to the consent page and Allow again, or a reload: nothing is exchanged.
            return callback.home_with(request, callback.already_signed_in(who))
        request.note(*tracing.callback_step(params))
        callback.check_issuer(params, self.client)
        kind = self.kinds.get(pending.panel)  # None for a sign-in
        if params.get("error") is not None:
            words = PANELS[kind.panel].words if kind else None
            return callback.home_with(request, callback.refused(params["error"], who, words))
        if not params.get("code"):
            raise BadRequest("The answer has no authorization code.")

        tokens = oauth.exchange_code(self.client, params["code"], pending.code_verifier)
        person = self.sign_ins.identify(request, tokens, pending)
        if kind is not None:
            return self.sign_ins.widen(request, pending, kind, person, tokens)
        user = token_store.sign_in(person, tokens)
        if user is None:
            return self.sign_ins.no_refresh_token(request, tokens)
        log.info("%s: signed in, scope %r", account(user), tokens.scope)
        self.sign_ins.settle(request, user, person)
        # The page itself greets the user by name, and links to the trace: the flash only
        # says what happened.
        return callback.home_with(request, f"You are signed in with {who}.")

    def signed_in_page(self, request, user):
        """Step 7: the user's name and steps, from the provider's API (see dashboard.py),
        refreshing the tokens when they are due (step 8, in oauth.ApiClient). The page
        drawn the view before, while nothing it shows has changed (kept_pages.py)."""
        view = self.kept_pages.view(request.browser, user, request.environ)
        if view.kept is not None:
            return Response(view.kept, mimetype="text/html")
        shown = {"user": user, "display_name": user.display_name, "notes": []}
        # The provider the user's tokens came from, which the lines under the buttons name.
        shown["account_provider"] = dialect_of(user)
        try:
            shown.update(self.dashboard.show(user, shown["notes"]))
        except oauth.ReconnectNeeded:
            shown["user"] = User.get_or_none(User.id == user.id)  # its tokens are gone now
            if shown["user"] is None:  # and so is the row: deleted meanwhile, elsewhere
                return self.pages.render(request, "index.html")
            request.browser.add_flash(
                f"{self.dialect.NAME} no longer accepts this app's access. Connect again."
            )
        # Download my data, and Delete my data (see on_my_data() and on_delete() below).
        kinds = tuple((p["name"], p["title"]) for p in shown.get("panels", ()) if p["granted"])
        shown["own_data"] = self.pages.part(request, "own_data.html", kinds=kinds)
        quiet = request.browser.flashes == "[]"  # no message for this view to show
        html = self.pages.html(request, "index.html", **shown)
        if "day_ends" in shown:
            view.keep(html, shown["day_ends"], not quiet, shown["notes"])
        return Response(html, mimetype="text/html")

    def on_revoke(self, request):
        """Step 9, Disconnect: revoke at the provider, and forget the tokens here whatever
        it says."""
        self.sessions.check_csrf(request)
        user = request.browser.user
        if user is not None and user.connected:
            self.webhooks.unsubscribe(user)  # Fitbit's, while the tokens still work
            request.browser.add_flash(disconnect.disconnect(self.client, user))
        return redirect(request.urls.build("index"), code=302)

    def on_logout(self, request):
        """Step 9, Sign out: this browser forgets the user; the app keeps its access."""
        self.sessions.check_csrf(request)
        self.sessions.start(request)
        request.browser.add_flash("You are signed out.")
        return redirect(request.urls.build("index"), code=302)

    def on_more(self, request):
        """Step 10, from the signed-in page, when the user asks to see one more kind of data:
        a consent round for its scope alone (least privilege: the first sign-in asked only
        for what the first page needs). The same round trip as a sign-in, state and PKCE
        and all, that comes back to the callback and ends in SignIns.widen()."""
        self.sessions.check_csrf(request)
        user = request.browser.user
        kind = self.kinds.get(request.form.get("panel", ""))
        if user is None or not user.connected or dialect_of(user) is not self.dialect:
            raise BadRequest("Sign in first, then ask for what you would like to see.")
        if kind is None:
            raise BadRequest("There is no such kind of data to show.")
        if kind.granted(user.scope):
            return redirect(request.urls.build("index"), code=302)  # nothing to ask for
        return self.sign_ins.begin(request, kind)

    def on_trace(self, request):
        """What just happened: this browser's last sign-in, exchange by exchange, masked."""
        trace = request.browser.trace if request.browser else None
        steps = token_store.steps_of(trace) if trace else []
        return self.pages.render(request, "trace.html", steps=steps)

    def on_users(self, request):
        """Everyone who has signed in, USERS_PER_PAGE to a page, and never a token."""
        page = request.args.get("page", "1")
        if not re.fullmatch(r"[1-9][0-9]{0,5}", page):
            raise BadRequest("The page number must be a whole number, starting at 1.")
        page, pages = int(page), User.page_count(USERS_PER_PAGE)
        if page > pages:
            raise NotFound(f"There is no page {page}: the users fit on {pages}.")
        rows = self.pages.users_rows(User.page_of(page, USERS_PER_PAGE))
        return self.pages.render(request, "users.html", rows=rows, page=page, pages=pages)

    def on_webhook(self, request):
        """The provider's notice that a user's data changed, or its handshake."""
        return self.webhooks.receive(request)

    # The user's own data ------------------------------------------------------------

    def on_my_data(self, request):
        """Download my data: one JSON file of what the app keeps about the signed-in user,
        from what is kept alone (no call to the provider), and never a token."""
        export = self.my_data.export(self.own_user(request))
        return download(json.dumps(export, indent=2), "application/json", "my-data.json")

    def on_my_data_csv(self, request, panel):
        """One kind of the user's data (steps, sleep, heart rate) as CSV, a line a day."""
        user = self.own_user(request)
        if panel not in self.kinds:
            raise NotFound("There is no such kind of data.")
        return download(self.my_data.csv_of(user, panel), "text/csv", f"my-{panel}.csv")

    def on_delete(self, request):
        """Delete my data: a page that says what will go, and its form, a POST with the
        page's CSRF token. The browser is signed out, with a note saying how it went."""
        user = self.own_user(request)
        if request.method == "GET":
            answers = self.my_data.cached_answers(user)
            shown = {"answers": len(answers), "browsers": user.browser_count()}
            # A kept answer that is no panel's is the profile's.
            shown["panels"] = [PANELS[p].words if p in PANELS else PROFILE_WORDS for p in answers]
            return self.pages.render(
                request, "delete.html", user=user, account_provider=dialect_of(user), **shown
            )
        self.sessions.check_csrf(request)
        message = self.my_data.delete(user)
        self.sessions.start(request)  # its old session went with the rest
        request.browser.add_flash(message)
        return redirect(request.urls.build("index"), code=302)

    @staticmethod
    def own_user(request):
        user = request.browser.user if request.browser else None
        if user is None:
            raise Forbidden("Sign in first: this page is about the data kept for you.")
        return user

    # Dispatch -----------------------------------------------------------------------

    def dispatch_request(self, request):
        try:
            self.sessions.load(request)
            endpoint, values = request.urls.match()
            response = getattr(self, f"on_{endpoint}")(request, **values)
        except HTTPException as error:
            if error.code is None or error.code < 400:
                return error  # a routing redirect, such as a missing trailing slash
            response = self.pages.http_error(request, error)
        except oauth.ProviderError as error:
            response = self.pages.provider_error(request, error)
        except oauth.RefreshBusy:
            response = self.pages.refresh_busy(request)
        except encryption.KeyNotHeld as missing:
            # Sealed by a process that already has a new key: nothing is lost, and this
            # process will open it once it is restarted with that key too.
            log.warning(
                "A value sealed by key %s, which this process lacks, was left as it is: "
                "restart it with the %s the other processes have",
                missing.kid,
                encryption.SETTING,
            )
            response = self.pages.key_not_held(request)
        request.keep_trace()
        return self.sessions.set_cookie(request, response)

    def wsgi_app(self, environ, start_response):
        # Step 7 again, unchanged since this browser last saw it (kept_pages.py): its bytes,
        # with the headers its Response had.
        kept = self.kept_pages.at_the_door(environ, self.sessions)
        if kept is not None:
            start_response("200 OK", [("Content-Type", HTML), ("Content-Length", str(len(kept)))])
            return [kept]
        request = Request(environ)
        try:
            request.urls = self.url_map.bind_to_environ(environ)
        except BadHost as error:
            # A Host that no machine can be called (a label of over 63 characters, say): a
            # 400, whose links need no host (docs/security.md item 55).
            request.urls = self.url_map.bind("localhost")
            response = self.without_database(request, partial(self.pages.http_error, error=error))
            return response(environ, start_response)
        headers = self.dialect.RATE_LIMIT_HEADERS

        def observe(*exchange):  # every request oauth.py sends, for the trace
            request.note(*tracing.exchange_step(headers, *exchange))

        try:
            with connection_when_needed(), oauth.observed(observe):
                response = self.dispatch_request(request)
        except OperationalError:
            # Locked by another process past the busy timeout, or unreachable. Whatever was
            # under way was rolled back, and no refresh token is spent without a lease that
            # was written first, so the user's access at the provider is intact.
            log.warning("The database is busy or unavailable on %s", request.path)
            response = self.without_database(request, self.pages.database_busy)
        except Exception:
            log.exception("Unexpected error on %s", request.path)
            response = self.without_database(request, self.pages.server_error)
        return response(environ, start_response)

    def without_database(self, request, page):
        """An error page that neither reads nor writes the database (no flashes, no user)."""
        request.browser = None
        return self.sessions.set_cookie(request, page(request))

    def __call__(self, environ, start_response):
        return self.wsgi_app(environ, start_response)


def download(text, mimetype, filename):
    """A file to save, never kept by any cache on the way."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    headers["Cache-Control"] = "no-store"
    return Response(text, mimetype=mimetype, headers=headers)


def create_app(config):
    open_database(config.database_url, config.encryption_keys)
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
    config = config_from_env(environ, port_setting(environ))
    for line in start_up_lines(config):
        log.log(logging.WARNING if line.startswith("WARNING") else logging.INFO, line)
    return create_app(config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=port_setting(os.environ))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)

    config = config_from_env(os.environ, args.port)
    app = create_app(config)
    print(f" * Sign in with {config.client.dialect.NAME}: open http://{args.host}:{args.port}")
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
