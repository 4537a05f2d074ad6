"""Run one stand-in alone: `python -m sandbox [--provider google] --port 4001`.

It registers one client from the app's own variables (FITBIT_CLIENT_ID, FITBIT_CLIENT_SECRET
and FITBIT_REDIRECT_URI, or the GOOGLE_ ones), or makes one up once and keeps it, and prints
the settings that point the app at it.
"""

import argparse
import os

from werkzeug.serving import run_simple

from . import DEFAULT_DATABASE, STAND_INS, RegisteredClient


def main(argv=None):
    parser = argparse.ArgumentParser(description="A local stand-in for Fitbit, or for Google.")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=4001)
    parser.add_argument(
        "--provider", choices=STAND_INS, default=os.environ.get("PROVIDER") or "fitbit"
    )
    args = parser.parse_args(argv)
    if args.provider not in STAND_INS:  # a default from PROVIDER is not checked by argparse
        parser.error(f"PROVIDER={args.provider!r} is not known: use fitbit or google.")

    env = os.environ
    kind = STAND_INS[args.provider]
    prefix = args.provider.upper()  # FITBIT_ or GOOGLE_, as the app reads them
    # The app's callback, as the app itself works it out: on the app's PORT.
    app_port = env.get("PORT") or "4000"
    redirect_uri = env.get(f"{prefix}_REDIRECT_URI") or f"http://localhost:{app_port}/auth/callback"
    database = kind.database_for(env.get("SANDBOX_DATABASE") or DEFAULT_DATABASE)
    expires_in = int(env.get("SANDBOX_EXPIRES_IN") or kind.DEFAULT_EXPIRES_IN)
    stand_in = kind(expires_in=expires_in, database=database)
    if env.get(f"{prefix}_CLIENT_ID") and env.get(f"{prefix}_CLIENT_SECRET"):
        client = RegisteredClient(
            env[f"{prefix}_CLIENT_ID"], env[f"{prefix}_CLIENT_SECRET"], redirect_uri
        )
        stand_in.store.clients.register(client)
        credentials = f"using {prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET from the environment"
    else:
        client = stand_in.generated_client(redirect_uri)
        credentials = (
            f"generated once and kept in {database}:\n"
            f"   {prefix}_CLIENT_ID={client.client_id}\n"
            f"   {prefix}_CLIENT_SECRET={client.client_secret}"
        )
    root = f"http://{args.host}:{args.port}"
    # PROVIDER too: without it, the lines pasted into .env would give Fitbit's dialect.
    lines = {"PROVIDER": args.provider, **kind.settings(root)}
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
