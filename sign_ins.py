"""A sign-in's round trip to the provider's consent page and back (steps 2, 4 to 6), and a
consent round's for one kind of data more (step 10): starting one with its own state and
PKCE verifier, and settling the provider's answer, once callback.py has checked it: who the
tokens belong to, the row they are filed under, and the browser's new session. The views of
fitbit_oauth_app.py call these in the order a sign-in runs.
"""

import logging
import secrets

from werkzeug.exceptions import ServiceUnavailable
from werkzeug.utils import redirect

import callback
import disconnect
import id_tokens
import oauth
import token_store
import tracing
from models import PendingSignIn, User, db
from panels import PANELS
from providers import account, dialect_of

log = logging.getLogger("fitbit_oauth_app")


class SignIns:
    """The round trips of one app: its `config` (the client, and whether it is set up), and
    the parts a sign-in touches: `sessions`, `dashboard` (answers read on the way) and
    `webhooks` (Fitbit's subscriptions, per user)."""

    def __init__(self, config, sessions, dashboard, webhooks):
        self.config, self.client = config, config.client
        self.dialect = config.client.dialect
        self.sessions, self.dashboard, self.webhooks = sessions, dashboard, webhooks
        self.id_token_keys = id_tokens.ProviderKeys(self.client)  # fetched when first needed

    def begin(self, request, kind=None):
        """Steps 2 and 10: a sign-in, or a consent round for one `kind` of data more for the
        user signed in here, off to the provider's consent page with its own state and PKCE
        verifier."""
        if not self.config.configured:
            missing = self.dialect.SETTINGS["client_secret"]
            raise ServiceUnavailable(f"{missing} is not set. See docs/providers.md.")
        state, verifier, nonce = oauth.new_state(), oauth.new_code_verifier(), oauth.new_nonce()
        user = request.browser.user if kind is not None else None
        self.sessions.clear_some()
        with db.atomic():
            # Counted and added in one transaction, so the cap holds when many start at once.
            address = self.sessions.admit_sign_in(request)
            browser = self.sessions.ensure(request)
            if kind is None:  # a new sign-in starts a new trace: what /trace shows from now on
                browser.trace = secrets.token_hex(16)
            # One sign-in in flight per browser: starting again replaces the last one.
            PendingSignIn.delete().where(PendingSignIn.session == browser).execute()
            PendingSignIn.create(
                session=browser,
                state=state,
                code_verifier=verifier,
                nonce=nonce,
                client=address,
                user=user,
                panel=kind.panel if kind else None,
            )
            browser.save()
        # Google hands out a refresh token only on a consent: forced unless this browser's
        # user is known to hold one already.
        holder = browser.user
        holds = holder is not None and holder.connected and dialect_of(holder) is self.dialect
        scope = self.dialect.more_scope(user.scope, kind) if kind else None
        url = oauth.authorize_url(self.client, state, verifier, holds, scope, nonce)
        request.note(*tracing.authorize_step(url, verifier, kind and PANELS[kind.panel].words))
        return redirect(url, code=302)

    # Step 3, the consent page, is the provider's (here sandbox/): it sends the browser back.

    def identify(self, request, tokens, pending):
        """Step 5: who the new tokens belong to (the dialect's identify), their ID token
        checked against the nonce the `pending` sign-in (or consent round) sent."""
        try:
            keys = self.id_token_keys
            checked = self.dialect.checked_id_token(self.client, keys, tokens, pending.nonce)
            if checked is not None:
                request.note(*tracing.id_token_step(checked))
            return self.dialect.identify(self.client, tokens, checked)
        except oauth.TokenRejected as error:
            # Not the provider failing: the code was redeemed twice, and the tokens of both
            # redemptions are dead already.
            raise oauth.RevokedAtOnce(error.status, error.error_type, who=error.who) from None
        except oauth.RateLimited:
            # A spent budget that leaves the user unknown goes on to its page with the
            # tokens unrevoked: this app spent it for this very user, whose grant is in use
            # elsewhere, and a revoke could end it.
            raise
        except oauth.ProviderError as error:
            # An answer not to be believed, nobody to file the tokens under (no Health scope,
            # no Health profile), or no answer: nothing is kept, and the tokens go back if
            # they are nobody's here. The log says which check failed, never the token.
            if isinstance(error, oauth.UntrustedAnswer):
                log.warning("%s's ID token was refused: %s check failed", error.who, error.check)
            error.given_back = self.nobodys_here(tokens)
            if error.given_back:
                disconnect.revoke_quietly(self.client, tokens.refresh_token or tokens.access_token)
            raise

    def nobodys_here(self, tokens):
        """Whether tokens that will not be kept belong to no grant this app keeps: only
        then are they revoked, since at Google a revoke ends the whole grant, the one in
        use with it. Whose they are, the dialect says (Google's identity endpoint, which
        believes nothing of the ID token); when it cannot say (no Health scope granted, or
        no answer), they are taken to be somebody's, and dropped unrevoked: tokens never
        stored are lost to everyone, and a grant in use must not be."""
        person = self.dialect.owner(self.client, tokens)
        if person is None:
            return False
        user = User.of(person)
        return user is None or not user.connected or dialect_of(user) is not self.dialect

    def settle(self, request, user, person, kinds=None):
        """Step 6: the user's new tokens are stored. Keep the answers read on the way, and
        the budget if it ran out; subscribe to their changes (to `kinds` of data, after a
        consent round); and give the browser a new session id, so that an id planted before
        is worth nothing."""
        for key, (data, headers) in person.answers.items():
            self.dashboard.keep_answer(user, key, data, headers)
        if person.spent_until is not None:  # the page then says when its data comes
            user.record_budget(0, person.spent_until)
        self.webhooks.subscribe(user, kinds)  # Fitbit's, per user: its data then comes itself
        self.sessions.start(request, user=user, carry_flashes=True)

    def no_refresh_token(self, request, tokens):
        """Google sent no refresh token (the user had consented before) and none is kept
        here. Revoking ends that old grant at Google, and signed out, this browser's next
        sign-in asks for consent: either way the next answer brings a new one."""
        disconnect.revoke_quietly(self.client, tokens.access_token)
        self.sessions.start(request, carry_flashes=True)
        return callback.home_with(request, callback.no_refresh_token(self.dialect.NAME))

    def widen(self, request, pending, kind, person, tokens):
        """Step 10, back at the callback: the consent round's answer. It must be the same
        person, whose row it widens; with the new scope unticked, or another account, it
        changes nothing."""
        who, words = self.dialect.NAME, PANELS[kind.panel].words
        user = User.get_or_none(User.id == pending.user_id)
        if user is None or User.of(person) != user:
            return self.another_account(request, person, tokens)
        if not kind.granted(tokens.scope):
            # The new pair is dropped, unrevoked: Fitbit's revoke would end the old one too.
            log.info("%s: %s not granted in a consent round", account(user), kind.panel)
            return callback.home_with(request, callback.not_granted(words))
        before = user.scope
        user = token_store.sign_in(person, tokens)  # the same row, the wider grant
        if user is None:  # no refresh token sent, and the row's is gone since
            return self.no_refresh_token(request, tokens)
        log.info("%s: granted %s, scope %r", account(user), kind.panel, tokens.scope)
        request.note(*tracing.scope_step(before, user.scope))
        self.settle(request, user, person, (kind,))
        return callback.home_with(request, f"{who} now lets this app see {words}.")

    def another_account(self, request, person, tokens):
        """A consent round that came back as somebody else: nothing is stored. Their tokens
        are given back unless that account is connected here, where a revoke could end the
        grant it uses."""
        other = User.of(person)
        if other is None or not other.connected:
            disconnect.revoke_quietly(self.client, tokens.refresh_token or tokens.access_token)
        log.warning("A consent round came back as another account: refused")
        return callback.home_with(request, callback.another_account(self.dialect.NAME))
