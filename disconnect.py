"""Handing tokens back to the provider (RFC 7009, step 9 of the walkthrough), and saying
how it went. The app forgets the tokens whatever the provider answers; these only tell
the user, and the log, whether the provider forgot them too.
"""

import logging

import oauth
import token_store
from providers import account, dialect_of

log = logging.getLogger("fitbit_oauth_app")


def revoke_for(client, user):
    """Revoke the user's grant where it was given; the words that say how it went."""
    provider = dialect_of(user)
    site = provider.SITE_FOR_REVOKING
    if provider is not client.dialect:
        # Tokens of the other dialect go nowhere: this app no longer talks to that API.
        log.info("%s: disconnected; tokens of %s not sent", account(user), provider.TITLE)
        return f"Disconnected here. You can revoke access at {provider.NAME} at {site}."
    try:
        oauth.revoke(client, token_store.tokens_of(user).refresh_token)
    except oauth.ProviderError as error:
        log.warning("%s: disconnected, but revoking failed: %s", account(user), error)
        return (
            f"Disconnected here, but {provider.NAME} did not confirm. You can revoke "
            f"access yourself at {site}."
        )
    log.info("%s: disconnected, access revoked at %s", account(user), provider.NAME)
    return f"Disconnected. {provider.NAME} has revoked this app's access."


def revoke_quietly(client, token):
    """Hand back tokens this app will not keep; a failure changes nothing for the user."""
    try:
        oauth.revoke(client, token)
    except oauth.ProviderError as error:
        log.warning("Unkept tokens were not revoked: %s", error)
