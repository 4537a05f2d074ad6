"""Handing tokens back to the provider (RFC 7009, step 9 of the walkthrough), and saying
how it went. The app forgets the tokens whatever the provider answers; these only tell
the user, and the log, whether the provider forgot them too.
"""

import logging

import oauth
import token_store
from providers import account, dialect_of

log = logging.getLogger("fitbit_oauth_app")


def disconnect(client, user):
    """Step 9, Disconnect: the user's tokens taken out of their row (no process can refresh
    them from then on), then handed back where they were given; the words that say how it
    went. Fitbit's subscriptions are deleted before this (webhooks.py), which may refresh
    the tokens: what is revoked is the pair the row holds by then, never one already spent."""
    provider = dialect_of(user)
    site = provider.SITE_FOR_REVOKING
    tokens = token_store.take_tokens(user.id)
    if provider is not client.dialect:
        # Tokens of the other dialect go nowhere: this app no longer talks to that API.
        log.info("%s: disconnected; tokens of %s not sent", account(user), provider.TITLE)
        return f"Disconnected here. You can revoke access at {provider.NAME} at {site}."
    if tokens is None:
        # Tokens that no longer open (changed in the database) cannot be handed back.
        log.warning("%s: disconnected, with no readable tokens to revoke", account(user))
        return (
            f"Disconnected here, but the tokens kept for you could not be read, so "
            f"{provider.NAME} was not asked to revoke them. You can revoke access yourself "
            f"at {site}."
        )
    if not revoke(client, tokens, account(user)):
        return (
            f"Disconnected here, but {provider.NAME} did not confirm. You can revoke "
            f"access yourself at {site}."
        )
    log.info("%s: disconnected, access revoked at %s", account(user), provider.NAME)
    return f"Disconnected. {provider.NAME} has revoked this app's access."


def revoke(client, tokens, who):
    """Hand a user's tokens back (RFC 7009); whether the provider confirmed it. The refresh
    token: the grant lives on through it."""
    try:
        oauth.revoke(client, tokens.refresh_token or tokens.access_token)
    except oauth.ProviderError as error:
        log.warning("%s: revoking failed: %s", who, error)
        return False
    return True


def revoke_quietly(client, token):
    """Hand back tokens this app will not keep; a failure changes nothing for the user."""
    try:
        oauth.revoke(client, token)
    except oauth.ProviderError as error:
        log.warning("Unkept tokens were not revoked: %s", error)
