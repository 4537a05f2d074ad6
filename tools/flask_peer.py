"""`make bench`'s Flask peer: this app's signed-in page, written the way a Flask app usually
is, so that the bench can say what the app's own care for a page's cost is worth.

It serves the same page to the same browser: the same database, session cookie, templates
and readers of each answer. What differs is how: Flask's routing and `render_template`, and
every view does all the work again, with nothing kept from the view before: the session,
the user and their answers read by plain peewee queries, each answer opened and parsed,
each panel and the page rendered. It serves `/` alone, and only the page of a signed-in user
whose answers are cached; the app's other routes are here only so that its links build.

    gunicorn 'tools.flask_peer:app_from_env()'
"""

import json
import os
from datetime import UTC, datetime

from flask import Flask, abort, render_template, request
from markupsafe import Markup

import dashboard
import database
import encryption
import pages
import sandbox_mode
import token_store
from models import ApiCache, BrowserSession, User, db, shared_secret
from panels import PANELS
from providers import dialect_of
from sessions import SESSION_COOKIE, Sessions
from settings import config_from_env

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project
# The app's routes that the page links to: here they answer 404.
LINKED = ("auth", "trace", "more", "logout", "revoke", "my_data", "delete", "users")


def create(config):
    database.open_database(config.database_url, config.encryption_keys)
    if config.sandbox:  # the app's registration at the stand-in, for the links to it
        config, _ = sandbox_mode.register(config)
    app = Flask("flask_peer", template_folder=os.path.join(HERE, "templates"))
    app.jinja_env.filters.update(
        thousands="{:,}".format, day=pages.day_label, rows=pages.trace_rows, hours=pages.hours
    )
    for endpoint in LINKED:
        app.add_url_rule(f"/{endpoint}", endpoint, lambda: abort(404))
    app.add_url_rule("/my-data/<panel>.csv", "my_data_csv", lambda panel: abort(404))
    sessions = Sessions(config.secret_key or shared_secret("session-key"))
    client, dialect = config.client, config.client.dialect

    @app.get("/")
    def index():
        with db.connection_context():
            key = sessions.keyed_hash(request.cookies.get(SESSION_COOKIE, ""))
            browser = BrowserSession.get_or_none(BrowserSession.key == key)
            user = User.get_or_none(User.id == browser.user_id) if browser else None
            if user is None or not user.connected or dialect_of(user) is not dialect:
                abort(404)
            answers = {row.path: row for row in ApiCache.select().where(ApiCache.user == user)}

        def answer(api_request):
            row = answers.get(api_request.key)
            if row is None:
                return None
            context = token_store.answer_context(user.id, api_request.key)
            return json.loads(encryption.keyring().open(row.body, context))

        shown = {"granted": [], "notes": []}
        profile = answer(dialect.profile_request(client))
        name, avatar, member_since = dialect.read_profile(profile)
        zone = answer(dialect.zone_request(client))
        today = datetime.now(dialect.read_zone(zone) if zone else UTC).date()
        readings = {}
        for kind in dialect.DATA:
            data = answer(kind.request(client, today)) if kind.granted(user.scope) else None
            found = kind.read(data) if data is not None else None
            readings[kind.panel] = tuple(found) if isinstance(found, list) else found
        shown["panels"] = [panel(kind, user, readings, today) for kind in dialect.DATA]
        shown["granted"] = dashboard.granted_words(dialect, user.scope)
        kinds = [(p["name"], p["title"]) for p in shown["panels"] if p["granted"]]
        own_data = render_template("own_data.html", kinds=kinds)
        return render_template(
            "index.html",
            config=config,
            provider=dialect,
            flashes=[],
            browser=browser,
            user=user,
            display_name=name,
            avatar=avatar,
            member_since=member_since,
            account_provider=dialect,
            own_data=Markup(own_data),
            **shown,
        )

    def panel(kind, user, readings, today):
        shown = {"name": kind.panel, **PANELS[kind.panel]._asdict()}
        shown["granted"] = kind.granted(user.scope)
        data = readings[kind.panel]
        if shown["granted"] and data is not None:
            beside = {name: readings[name] for name in kind.beside}
            figures = PANELS[kind.panel].figures(data, today, beside)
            markup = render_template(
                f"panels/{kind.panel}.html", data=data, today=today, provider=dialect, **figures
            )
            shown["drawn"] = Markup(markup)
        return shown

    return app


def app_from_env():
    config = config_from_env(os.environ, int(os.environ.get("PORT", 4000)))
    return create(config)
