"""Run one stand-in alone: `python -m sandbox [--provider google] --port 4001`.

It registers one client from the app's own variables (FITBIT_CLIENT_ID, FITBIT_CLIENT_SECRET
and FITBIT_REDIRECT_URI, or the GOOGLE_ ones), or makes one up once and keeps it, and prints
the settings that point the app at it.

Or make one of its people walk: `python -m sandbox walk alex 2500 [--provider google]`, which
adds the steps to today and notifies the apps that subscribed, as the stand-in's page does.
"""

import argparse
import os
import sys

from werkzeug.serving import run_simple

from . import DEFAULT_DATABASE, STAND_INS, RegisteredClient
from .fitbit_day import INTRADAY_ANSWERS
from .walk_page import MOST_STEPS, steps_walked


def walk(argv):
    """`walk <who> <steps>`: the exit status is 0 when every app told answered 2xx."""
    parser = argparse.ArgumentParser(prog="python -m sandbox walk", description=walk.__doc__)
    parser.add_argument("who", help="a first name (alex, sam, ...) or a user id")
    parser.add_argument("steps", help=f"1 to {MOST_STEPS}")
    add_provider(parser)
    args = parser.parse_args(argv)
    kind = stand_in_kind(parser, args)
    stand_in = kind(
        database=kind.database_for(os.environ.get("SANDBOX_DATABASE") or DEFAULT_DATABASE)
    )
    people = stand_in.people()
    found = [
        user_id
        for user_id, name in people.items()
        if args.who.lower() in (user_id.lower(), name.split()[0].lower())
    ]
    steps = steps_walked(args.steps)
    if len(found) != 1 or steps is None:
        names = ", ".join(name.split()[0].lower() for name in people.values())
        parser.error(f"Name one of {names}, and 1 to {MOST_STEPS} steps.")
    sent = stand_in.walk(found[0], steps, retry_in_background=False)
    print(f"{people[found[0]]} walked {steps:,} steps at the {kind.NAME} stand-in.")
    for endpoint, status in sent:
        print(f"  {endpoint}: {status or 'no answer (or the handshake failed)'}")
    if not sent:
        print("  No app has subscribed to their changes: sign in to the app first.")
    return 0 if all(status and 200 <= status < 300 for _, status in sent) else 1


def registered_client(stand_in, env, prefix, redirect_uri, database):
    """The app's client at the stand-in, from its variables or made once; and how, in words."""
    if env.get(f"{prefix}_CLIENT_ID") and env.get(f"{prefix}_CLIENT_SECRET"):
        client = RegisteredClient(
            env[f"{prefix}_CLIENT_ID"], env[f"{prefix}_CLIENT_SECRET"], redirect_uri
        )
        stand_in.store.clients.register(client)
        return client, f"using {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET from the environment"
    client = stand_in.generated_client(redirect_uri)
    return client, (
        f"generated once and kept in {database}:\n"
        f"   {prefix}_CLIENT_ID={client.client_id}\n"
        f"   {prefix}_CLIENT_SECRET={client.client_secret}"
    )


def intraday_setting(stand_in, env, parser):
    """What Fitbit's stand-in gives an app of the intraday heart rate: SANDBOX_FITBIT_INTRADAY
    (sandbox/fitbit_day.py)."""
    value = env.get("SANDBOX_FITBIT_INTRADAY")
    if value and hasattr(stand_in, "intraday"):
        if value not in INTRADAY_ANSWERS:
            parser.error(f"SANDBOX_FITBIT_INTRADAY must be one of {', '.join(INTRADAY_ANSWERS)}.")
        stand_in.intraday = value


def add_provider(parser):
    parser.add_argument(
        "--provider", choices=STAND_INS, default=os.environ.get("PROVIDER") or "fitbit"
    )


def stand_in_kind(parser, args):
    """The stand-in class --provider names; a default from PROVIDER is not checked by
    argparse, so it is checked here."""
    if args.provider not in STAND_INS:
        parser.error(f"PROVIDER={args.provider!r} is not known: use fitbit or google.")
    return STAND_INS[args.provider]


COMMANDS = """commands:
  walk WHO STEPS   one of the stand-in's people walks: the steps are added to today, and the
                   apps that subscribed are notified (python -m sandbox walk --help)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="A local stand-in for Fitbit, or for Google.",
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=4001)
    add_provider(parser)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["walk"]:
        raise SystemExit(walk(argv[1:]))
    args = parser.parse_args(argv)
    kind = stand_in_kind(parser, args)

    env = os.environ
    prefix = args.provider.upper()  # FITBIT_ or GOOGLE_, as the app reads them
    # The app's callback, as the app itself works it out: on the app's PORT.
    app_port = env.get("PORT") or "4000"
    redirect_uri = env.get(f"{prefix}_REDIRECT_URI") or f"http://localhost:{app_port}/auth/callback"
    database = kind.database_for(env.get("SANDBOX_DATABASE") or DEFAULT_DATABASE)
    expires_in = int(env.get("SANDBOX_EXPIRES_IN") or kind.DEFAULT_EXPIRES_IN)
    stand_in = kind(expires_in=expires_in, database=database)
    intraday_setting(stand_in, env, parser)
    client, credentials = registered_client(stand_in, env, prefix, redirect_uri, database)
    root = f"http://{args.host}:{args.port}"
    # The app's webhook, beside its callback; the stand-in's handshake comes before its first
    # notification.
    app_root = redirect_uri.rsplit("/auth/callback", 1)[0]
    subscriber = stand_in.generated_subscriber(
        client.client_id, f"{app_root}/webhooks/{args.provider}"
    )
    # PROVIDER too: without it, the lines pasted into .env would give Fitbit's dialect.
    lines = {
        "PROVIDER": args.provider,
        **kind.settings(root),
        kind.WEBHOOK_SECRET_SETTING: subscriber.secret,
    }
    settings = "".join(f"   {name}={value}\n" for name, value in lines.items())
    print(
        f" * {kind.NAME} stand-in on {root}, one client registered, {credentials}\n"
        f" * Redirect URI: {redirect_uri}\n"
        f" * Point the app at it with:\n{settings}",
        end="",
    )
    run_simple(args.host, args.port, stand_in, threaded=True)


if __name__ == "__main__":
    main()
