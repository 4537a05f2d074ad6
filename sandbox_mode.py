"""Sandbox mode: the stand-ins for both providers, served by the app's own process.

With no client id set, the app signs in at a stand-in instead of the real provider. Both
stand-ins are mounted (Fitbit's at /sandbox, Google's at /sandbox/google), each with its
own state, so that a person can sign in with one and later the other, as they would move
from Fitbit to Google. The app still reaches them over real HTTP, like any other
provider: the mount only saves the reader from starting a second server. This is the one
module that imports the `sandbox` package, and only when sandbox mode is on.
"""

import dataclasses
from urllib.parse import urlsplit


def stand_in_for(dialect):
    """The stand-in that plays the provider of `dialect`."""
    import sandbox

    return sandbox.STAND_INS[dialect.KEY]


def endpoints(stand_in, redirect_uri):
    """The app's endpoint settings that point at `stand_in`, mounted in this same app,
    wherever the redirect URI says the app is."""
    app = urlsplit(redirect_uri)
    return stand_in.settings(f"{app.scheme}://{app.netloc}{stand_in.MOUNT}")


def register(config):
    """The stand-ins, by where they are mounted, and the config with the app's client
    registered at the one it talks to."""
    import sandbox

    database = config.sandbox_database or sandbox.DEFAULT_DATABASE
    stand_ins = {
        key: kind(database=kind.database_for(database)) for key, kind in sandbox.STAND_INS.items()
    }
    stand_in = stand_ins[config.client.dialect.KEY]
    if config.sandbox_expires_in is not None:
        stand_in.expires_in = config.sandbox_expires_in
    stand_ins["fitbit"].intraday = config.sandbox_intraday
    # The app's registration at the stand-in: made by the first worker to start, and the
    # same for every other one and after a restart.
    registered = stand_in.generated_client(config.client.redirect_uri)
    client = dataclasses.replace(
        config.client, client_id=registered.client_id, client_secret=registered.client_secret
    )
    # And its webhook's subscriber, whose handshake the stand-in makes before it first
    # sends a notification (the app is not listening yet).
    subscriber = stand_in.generated_subscriber(registered.client_id, webhook_url(config))
    webhooks = dataclasses.replace(config.webhooks, secret=subscriber.secret)
    mounts = {stand_in.MOUNT: stand_in for stand_in in stand_ins.values()}
    return dataclasses.replace(config, client=client, webhooks=webhooks), mounts


def webhook_url(config):
    """The app's webhook endpoint, wherever the redirect URI says the app is."""
    app = urlsplit(config.client.redirect_uri)
    return f"{app.scheme}://{app.netloc}/webhooks/{config.client.dialect.KEY}"
