"""Rendering: the templates with what every page needs, and the pages that say what went
wrong, in words a user can act on.

Nothing a provider wrote is ever shown: its messages can repeat the token.
"""

import functools
import logging
import os
from datetime import UTC, datetime

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup
from werkzeug.wrappers import Response

import oauth
from panels import PANELS
from providers import PROVIDERS, account

HERE = os.path.dirname(os.path.abspath(__file__))
# How many seconds a "try again" page asks the browser to wait.
RETRY_AFTER_SECONDS = 5

log = logging.getLogger("fitbit_oauth_app")


class Pages:
    """The app's pages, from templates/ (autoescaped), for the provider in use."""

    def __init__(self, config):
        self.config = config
        self.dialect = config.client.dialect
        self.jinja = Environment(
            loader=FileSystemLoader(os.path.join(HERE, "templates")), autoescape=True
        )
        self.jinja.filters["thousands"] = "{:,}".format
        self.jinja.filters["day"] = day_label
        self.jinja.filters["rows"] = trace_rows
        self.jinja.filters["hours"] = hours
        # A panel depends on its data and the day alone: drawn once for each, not per view.
        self.panel = functools.lru_cache(maxsize=256)(self.draw_panel)
        # So does a row of the users page, once its times are in words: drawn once per wording.
        self.user_row = functools.lru_cache(maxsize=4096)(self.draw_user_row)
        # A link depends only on where the app is mounted and its values: built once for each.
        self.links = {}
        self.pages = {}  # {(template, mount point): its markup}, for pages of nobody's
        self.parts = {}  # {(template, mount point, values): its markup}, see part()

    def render(self, request, template_name, status=200, **context):
        if request.browser is None and not context:
            html = self.same_for_everyone(request, template_name)
        else:
            html = self.html(request, template_name, **context)
        return Response(html, status=status, mimetype="text/html")

    def html(self, request, template_name, **context):
        flashes = request.browser.pop_flashes() if request.browser else []
        return self.rendered(
            request, template_name, flashes=flashes, browser=request.browser, **context
        )

    def rendered(self, request, template_name, **context):
        """A template's markup, given what every template may use: the settings, the
        provider, and url_for() for links."""
        return self.jinja.get_template(template_name).render(
            config=self.config,
            provider=self.dialect,
            url_for=lambda endpoint, **values: self.link(request, endpoint, values),
            **context,
        )

    def same_for_everyone(self, request, template_name):
        """A page for a browser without a session: no flash, no name, no form token, nothing
        of anyone's. Its markup depends on the template and on where the app is mounted,
        so it is rendered once for each (the signed-out home page, every first visit)."""
        key = (template_name, request.urls.script_name)
        if key not in self.pages:
            self.pages[key] = self.html(request, template_name)
        return self.pages[key]

    def part(self, request, template_name, **values):
        """A part of a page that depends on where the app is mounted and on `values` alone,
        all of them hashable: drawn once for each, and put in a page as it is."""
        key = (template_name, request.urls.script_name, *sorted(values.items()))
        if key not in self.parts:
            self.parts[key] = Markup(self.rendered(request, template_name, **values))
        return self.parts[key]

    def link(self, request, endpoint, values):
        """The path of `endpoint` with `values`, as the URL map builds it. Built once per
        mount point and values; the values come from templates (a panel's name, a page's
        number), and the links kept are capped all the same."""
        key = (request.urls.script_name, endpoint, *sorted(values.items()))
        path = self.links.get(key)
        if path is None:
            if len(self.links) >= 1024:
                self.links.clear()
            path = self.links[key] = request.urls.build(endpoint, values)
        return path

    def draw_panel(self, name, data, today, beside=()):
        """A panel's markup (templates/panels/<name>.html) for `data`, what a dialect's
        DataKind.read made of an answer, on the user's `today`, with what the panel draws
        beside its own data (((panel, what was read), ...)); None without data."""
        if data is None:
            return None
        figures = PANELS[name].figures(data, today, dict(beside))
        template = self.jinja.get_template(f"panels/{name}.html")
        return Markup(template.render(data=data, today=today, provider=self.dialect, **figures))

    def users_rows(self, users):
        """The users page's rows, for models.Listed records: what each says is worked out on
        every view (its times are in words, and time passes), its markup drawn once per
        wording."""
        now = datetime.now(UTC)
        return [
            self.user_row(
                user.display_name,
                PROVIDERS[user.provider].NAME,
                user.fitbit_id,
                user.health_user_id,
                token_status(user, now),
                in_words(user.last_sync_at, now) if user.last_sync_at else "never",
            )
            for user in users
        ]

    def draw_user_row(self, name, provider, fitbit_id, health_user_id, connection, last_sync):
        return Markup(
            self.jinja.get_template("user_row.html").render(
                name=name,
                provider=provider,
                fitbit_id=fitbit_id,
                health_user_id=health_user_id,
                connection=connection,
                last_sync=last_sync,
            )
        )

    def error(self, request, status, title, message, retry_after=None):
        response = self.render(request, "error.html", status=status, title=title, message=message)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    def provider_error(self, request, error):
        """Every way the provider can fail, as a page that says what happened."""
        user = request.browser.user if request.browser else None
        log.warning("%s: %s", account(user) if user else "sign-in", error)
        if isinstance(error, oauth.RateLimited):
            wait = max(1, int((error.reset_at - datetime.now(UTC)).total_seconds()))
            message = (
                f"{self.dialect.RATE_LIMIT_NOTE}. Try again at "
                f"{error.reset_at:%H:%M} UTC ({in_words(error.reset_at)})."
            )
            return self.error(request, 429, "Too many requests", message, retry_after=wait)
        status, title, message = explain(error, self.dialect)
        return self.error(request, status, title, message)

    def http_error(self, request, error):
        """A werkzeug HTTPException (400, 404, 405, ...) as a page of the app's own."""
        response = self.error(request, error.code, error.name, error.description)
        for name, value in error.get_headers(request.environ):
            if name.lower() != "content-type":
                response.headers[name] = value  # e.g. Allow on a 405
        return response

    def database_busy(self, request):
        message = "Nothing was lost. Try again in a few seconds."
        return self.error(request, 503, "The database is busy", message, RETRY_AFTER_SECONDS)

    def server_error(self, request):
        message = "Something went wrong on our side. Nothing was stored. Try again."
        return self.error(request, 500, "Server error", message)

    def key_not_held(self, request):
        message = (
            "Your data is kept encrypted, and this server is being given a new key. Nothing "
            "was lost or changed. Try again in a few seconds."
        )
        return self.error(request, 503, "A moment, please", message, RETRY_AFTER_SECONDS)

    def refresh_busy(self, request):
        message = (
            f"Another request is renewing your access at {self.dialect.NAME} right now. "
            "Try again in a few seconds."
        )
        return self.error(request, 503, "Renewing access", message, RETRY_AFTER_SECONDS)


def explain(error, dialect):
    """(status, title, message) for a page about a provider's failure. The dialect words
    the failures that are its own (dialect.error_page)."""
    who = error.who
    if isinstance(error, oauth.ProviderUnavailable):
        return 502, f"{who} is unavailable", f"{who} did not answer. Try again in a few minutes."
    if isinstance(error, oauth.BadResponse):
        message = f"{who} sent an answer this app cannot use, so nothing was stored. Try again."
        return 502, f"Unexpected answer from {who}", message
    if isinstance(error, oauth.UntrustedAnswer):
        kept = (
            "and the tokens it came with were given back."
            if error.given_back
            else "and the access you gave this app before is kept as it was."
        )
        message = (
            f"{who}'s answer could not be trusted: its ID token, which says who signed in, "
            f"failed a check. Nothing of it was stored, {kept} Please sign in again."
        )
        return 502, f"{who}'s answer could not be trusted", message
    if isinstance(error, oauth.RevokedAtOnce):
        message = (
            f"{who} revoked the tokens of this sign-in as soon as it issued them, as it does "
            "when the same sign-in is completed twice. Nothing was stored. Please sign in again."
        )
        return 400, "Sign-in cancelled", message
    own = dialect.error_page(error)
    if own is not None:
        return own
    if error.error_type == "invalid_grant":
        return (
            400,
            "Sign-in expired",
            f"{who} no longer accepts this sign-in. Please sign in again.",
        )
    if error.error_type == "invalid_client":
        names = dialect.SETTINGS
        message = f"Check {names['client_id']} and {names['client_secret']}."
        return 502, f"{who} did not recognise this app", message
    return 502, f"{who} refused the request", f"{who} answered {error.status} {error.error_type}."


# --- Filters ---------------------------------------------------------------------------


def in_words(moment, now=None):
    """'in 3 hours' or '5 minutes ago', seen from `now` (this moment, unless given)."""
    seconds = int((moment - (now or datetime.now(UTC))).total_seconds())
    amount = abs(seconds)
    if amount == 0:
        return "just now"  # not "in 0 seconds", right after a sync
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if amount >= size or unit == "second":
            break
    count = amount // size
    phrase = f"{count} {unit}{'' if count == 1 else 's'}"
    return f"in {phrase}" if seconds >= 0 else f"{phrase} ago"


def hours(minutes):
    """'7 h 05 min', or '45 min' under an hour."""
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02} min"


@functools.lru_cache(maxsize=1024)
def day_label(day):
    """'Mon 23 Nov'. Remembered: every view of the chart labels the same days again."""
    return f"{day:%a} {day.day} {day:%b}"


def trace_rows(items):
    """(name, value, why) rows of a trace table. Traces kept before the rows were explained
    hold {name: value} instead."""
    if isinstance(items, dict):
        return [(name, value, "") for name, value in items.items()]
    return items


def token_status(user, now):
    """How a user's connection stands at `now`, in words, for the users page."""
    if not user.connected:
        return "needs reconnecting"
    if user.expires_at > now:
        return f"expires {in_words(user.expires_at, now)}"
    return f"expired {in_words(user.expires_at, now)}; renewed on next use"
