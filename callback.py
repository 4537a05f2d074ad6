"""The callback, treated as hostile input, and the words for how it ended (steps 4 and 6 of
the walkthrough).

The provider sends the browser back to /auth/callback with a code and the state, but
anyone can send a browser there with anything at all. So the query is decoded strictly,
the state must be the one stored for this browser's sign-in, which is then used up, and
the way out leaves the code behind.
"""

from urllib.parse import parse_qsl

from werkzeug.exceptions import BadRequest
from werkzeug.utils import redirect

from models import PendingSignIn
from sessions import same_secret

# Longer than any real code or state, short enough that nothing oversized reaches Fitbit.
MAX_PARAM_LENGTH = 512


def params(request):
    """Step 4: the callback's query, decoded strictly. It is untrusted input, and werkzeug's
    own parser is lenient (it keeps an undecodable %FF as the three characters "%FF")."""
    try:
        pairs = parse_qsl(
            request.query_string.decode("ascii"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=10,
        )
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("The address you were sent back to is malformed.") from None
    found = {}
    for name, value in pairs:
        if name in found:
            raise BadRequest(f"The {name} parameter appears more than once.")
        if len(value) > MAX_PARAM_LENGTH:
            raise BadRequest(f"The {name} parameter is too long.")
        # RFC 6749 appendix A: code, state and error are printable ASCII (VSCHAR).
        if not value.isascii() or not value.isprintable():
            raise BadRequest(f"The {name} parameter has characters no provider sends.")
        found[name] = value
    return found


def claim_sign_in(browser, state):
    """Step 4: match the callback to the sign-in this browser started (RFC 6749 10.12), and
    use it up, so a replayed or forged callback never reaches the token endpoint."""
    if not state:
        raise BadRequest("The answer has no state parameter.")
    pending = None
    if browser is not None:
        pending = PendingSignIn.get_or_none(PendingSignIn.session == browser)
    if pending is None or not same_secret(state, pending.state):
        raise BadRequest("This sign-in was not started from this browser, or was already used.")
    if not pending.consume():
        raise BadRequest("This sign-in was already used.")
    if pending.expired:
        raise BadRequest("This sign-in took longer than 10 minutes. Please start again.")
    return pending


def check_issuer(params, client):
    """Step 4: RFC 9207's defence against mix-up. A callback that says which authorization
    server sent it (`iss`) must name the one this sign-in went to; an attacker's server,
    used by the same browser, could otherwise have its code redeemed here."""
    if "iss" in params and (not client.issuer or params["iss"] != client.issuer):
        raise BadRequest(
            f"This answer says it came from {params['iss']}, not from {client.dialect.NAME}, "
            "so it was refused. Start the sign-in again."
        )


def refused(error, who, words=None):
    """The words for a callback that brings an error, after a sign-in or a consent round
    for `words` (such as "your sleep"). Only a fixed text is shown: error_description is the
    other side's words."""
    if error == "access_denied" and words:
        return f"You chose not to show {words}. Everything you allowed before works as it did."
    if error == "access_denied":
        return f"You chose not to connect your {who} account. Nothing was stored."
    return f"{who} did not complete the sign-in ({error})."


def not_granted(words):
    return (
        f"You did not allow access to {words}, so it is not shown. Everything you allowed "
        "before works as it did."
    )


def another_account(who):
    return (
        f"That consent was given as another {who} account than the one signed in here, so "
        "it was not used, and nothing was stored. Ask again, and sign in at the consent page "
        "as yourself."
    )


def already_signed_in(who):
    return (
        f"You are already signed in with {who}. That answer belonged to a sign-in that is "
        "over, so it was not used."
    )


def no_refresh_token(who):
    return (
        f"{who} did not send the token this app needs to stay connected. Sign in again, and "
        "you will be asked to allow access once more."
    )


def home_with(request, message):
    """Step 6: home, with a note; the code leaves the address bar."""
    request.browser.add_flash(message)
    return clean_redirect(request.urls.build("index"))


def clean_redirect(location):
    """Step 6: leave the callback URL, code and all, out of the address bar, history and any
    Referer header (docs/security.md item 11)."""
    response = redirect(location, code=302)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
