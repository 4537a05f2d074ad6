"""The trace page's notebook: each HTTP exchange of a browser's sign-in, masked and explained.

oauth.py tells an observer about every request it sends (`oauth.observed`); the app hands
those to `exchange()` here, with the browser's trace id, and adds the two steps that happen
in the browser itself (the redirect to the consent page, and the callback). Secrets are
masked *before* anything is stored: a trace never holds a whole token, code or secret.
"""

import json
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

# Why each parameter of the authorization request is there.
AUTHORIZE_PARAMETERS = {
    "response_type": "code: the authorization code flow (RFC 6749 4.1).",
    "client_id": "Which app is asking. Public: it is in every URL.",
    "redirect_uri": "Where the provider sends the browser back. It must match the registration "
    "exactly, and comes from the configuration, never from the request.",
    "scope": "What the app asks to see. The user may grant less.",
    "state": "Ties the answer to this browser: the callback must bring back the value stored "
    "for this browser's sign-in.",
    "code_challenge": "The SHA-256 of a verifier that only this server knows (PKCE, RFC 7636).",
    "code_challenge_method": "S256: the challenge is a hash, so the verifier never travels here.",
    "access_type": "Google's own: offline asks for a refresh token, so the app can stay "
    "connected after the hour the access token lives.",
    "prompt": "Google's own: consent shows the consent page again, the only time Google "
    "hands out a refresh token. Sent when the app holds none for this user.",
    "nonce": "OpenID Connect's: a random value kept with this sign-in, which the ID token must "
    "carry back, so that a token minted for another sign-in, or replayed, is refused.",
    "include_granted_scopes": "Google's own: true keeps every scope the user granted before, "
    "so that this consent for one more adds to the grant instead of replacing it.",
}
# What each parameter of the callback means.
CALLBACK_PARAMETERS = {
    "code": "The authorization code: good once, for a few minutes, and only together with "
    "this app's secret and the PKCE verifier.",
    "state": "Must be the value stored for this browser's sign-in: checked in constant time, "
    "then used up.",
    "scope": "What the user granted, which can be less than what was asked for.",
    "iss": "Who sent this answer (RFC 9207). It must be the issuer the app expects, or the "
    "sign-in is refused: the defence against mix-up, where another server's code would be "
    "sent to this provider.",
    "authuser": "Google's own: which of the browser's Google accounts signed in (0 is the "
    "first). The app does not need it.",
    "prompt": "Google's own: whether the consent page was shown. The app does not need it.",
    "error": "Why there is no code: access_denied when the user said no.",
}
# What each field of a token answer means.
TOKEN_FIELDS = {
    "access_token": "Sent as 'Authorization: Bearer' with every API call.",
    "expires_in": "Seconds the access token lives; the app refreshes 5 minutes early.",
    "refresh_token": "Trades for a new access token when it runs out. Fitbit's work once, and "
    "each refresh brings the next; Google's are kept and used again, and come only after a "
    "consent.",
    "scope": "What the user granted, which can be less than what was asked for. After a "
    "consent round for one kind of data more, it is the whole grant: the old scopes and the "
    "new one.",
    "token_type": "Bearer: whoever holds the token may use it.",
    "user_id": "Fitbit's own: who signed in. Google's answer has none; the app asks the "
    "Health API's identity endpoint instead.",
    "id_token": "OpenID Connect's signed statement of who signed in (a JWT): checked before "
    "anything is stored, and shown decoded in the next step.",
}
# What each field of a request to the token or revoke endpoint is for.
FORM_FIELDS = {
    "grant_type": "authorization_code: the code for tokens (RFC 6749 4.1.3); refresh_token: "
    "a refresh (RFC 6749 6).",
    "code": "The code from the callback. It works once.",
    "redirect_uri": "The same as in the authorization request: the provider checks that the "
    "two match.",
    "code_verifier": "PKCE: the verifier leaves the server for the first time, here. The "
    "provider hashes it and compares the hash with the challenge it was sent at the start, so "
    "a stolen code is worth nothing without it.",
    "client_id": "Fitbit's own: the client id again, beside Basic authentication, as in "
    "Fitbit's examples. Never the secret.",
    "refresh_token": "The refresh token being spent.",
    "token": "The token to revoke (RFC 7009): the provider ends the grant it belongs to.",
}
# What each request header is for; Authorization by its scheme.
REQUEST_HEADERS = {
    "Basic": "HTTP Basic client authentication (RFC 6749 2.3.1): the client id and secret, "
    "never in the body.",
    "Bearer": "The access token (RFC 6750): whoever holds it may call the API.",
    "Accept": "The answer should be JSON.",
}
# What each parameter of a list's request says, and each field of its answer that leads on.
LIST_PARAMETERS = {
    "filter": "Google's own (AIP-160): which points, by a field of the data type; civil times "
    "are the user's own clock.",
    "pageSize": "How many points to a page, at most; the app asks for the largest the data "
    "type allows, so that a day costs as few calls as it can.",
    "pageToken": "Google's own (AIP-158): where the page before left off, good for the same "
    "filter only. Each page is one more call, counted against the budget before it is made.",
    "afterDate": "Fitbit's own: the activity log from this date on, the user's own clock.",
    "beforeDate": "Fitbit's own: the activity log before this moment, the user's own clock.",
    "sort": "asc with afterDate, desc with beforeDate: Fitbit takes no other pairing.",
    "limit": "How many entries to a page: Fitbit's largest is 100.",
    "offset": "Always 0: Fitbit pages only by pagination.next, never by an offset.",
}
PAGING_FIELDS = {
    "nextPageToken": "There is more: the app asks again with this as pageToken, until a page "
    "comes without one, or the bound of pages is met (then the panel says what it left out).",
    "pagination.next": "Fitbit's next page, a whole URL: followed only to the same API, since "
    "the access token goes with it, until it is empty or the bound of pages is met.",
}
SECRET_FIELDS = {"code", "access_token", "refresh_token", "token", "id_token"}
MAX_BODY = 600  # characters of an API answer kept: the trace shows its shape, not the data
FOLDED_AFTER = 12  # lines of an answer shown before the rest is folded away


def mask(value):
    """The first 4 characters and an ellipsis: enough to see that a token changed."""
    return f"{value[:4]}…" if isinstance(value, str) and value else value


def masked_fields(fields):
    shown = {}
    for name, value in fields.items():
        if name == "code_verifier":
            shown[name] = f"({len(value)} characters, sent for the first time)"
        elif name in SECRET_FIELDS:
            shown[name] = mask(value)
        else:
            shown[name] = value
    return shown


def masked_headers(headers):
    """[(name, value, why), ...], the credentials masked: "Basic ***", "Bearer ***"."""
    shown = []
    for name, value in headers.items():
        if name.lower() == "authorization":
            # A value without a scheme (a webhook's secret can be one) is masked whole.
            scheme = value.split(" ", 1)[0] if " " in value else ""
            shown.append((name, f"{scheme} ***".strip(), REQUEST_HEADERS.get(scheme, "")))
        else:
            shown.append((name, value, REQUEST_HEADERS.get(name, "")))
    return shown


def authorize_step(url, verifier, words=None):
    """Step 2: the redirect to the consent page, each parameter with its reason; or step 10,
    the same for a consent round that asks for `words` ("your sleep") more."""
    query = dict(parse_qsl(urlsplit(url).query))
    title = f"A second consent round, for {words}" if words else "The redirect to the consent page"
    return title, {
        "request": {"method": "GET", "url": url.split("?")[0]},
        "parameters": [
            (name, value, AUTHORIZE_PARAMETERS.get(name, "")) for name, value in query.items()
        ],
        "notes": [
            f"The PKCE verifier ({len(verifier)} characters) stays on this server until the "
            "token request, where it is sent for the first time."
        ],
    }


def callback_step(params):
    """Step 4: the browser comes back; its state matched this browser's sign-in."""
    return "The callback", {
        "parameters": [
            (name, value, CALLBACK_PARAMETERS.get(name, ""))
            for name, value in masked_fields(params).items()
        ],
        "notes": [
            "state matched the one stored for this browser's sign-in, which is now "
            "used up: the same URL will not work twice."
        ],
    }


def scope_step(before, after):
    """Step 10, the end of a consent round: the grant before it, and the grant now."""
    added = [name for name in after.split() if name not in before.split()]
    return "What the consent round changed", {
        "parameters": [
            ("scope before", before, "What the user had granted, since the sign-in."),
            ("scope now", after, "The new token answer's scope, kept for this user."),
            ("added", " ".join(added) or "nothing", "Read from now on; nothing else changed."),
        ],
        "notes": [
            "Same user, same row: the consent round must come back as the account signed in "
            "here, or nothing of it is kept."
        ],
    }


# What each part of an ID token says, and how it was checked (id_tokens.py).
ID_TOKEN_HEADER = {
    "alg": "The signing algorithm. Only RS256 is taken: a token saying none, or HS256 (an "
    "HMAC keyed with the public key), is refused before any key is used.",
    "kid": "Which of the provider's published keys signed it.",
    "typ": "JWT: what the token is.",
}
ID_TOKEN_CLAIMS = {
    "iss": "Who issued it: the provider this sign-in went to, or the token is refused.",
    "azp": "Whom it was issued to: this app's client id, or it is refused.",
    "aud": "Whom it is for: it must hold this app's client id, so that a token another app "
    "was given cannot sign anyone in here.",
    "sub": "The Google account's id, never reused. Not the Health user id: the identity "
    "endpoint gives that.",
    "iat": "When it was issued: not ahead of this server's clock (2 minutes' leeway), and "
    "within the hour.",
    "exp": "When it runs out, an hour after it was issued: not passed (2 minutes' leeway).",
    "at_hash": "The left half of the SHA-256 of the access token it came with: they must "
    "match, so an ID token cannot be paired with another answer's access token.",
    "nonce": "The value this sign-in sent with the authorization request: it must come back. "
    "It was kept with this sign-in alone, which is now used up.",
    "name": "With profile: the name on the page, read here instead of from userinfo.",
    "given_name": "With profile: the first name.",
    "family_name": "With profile: the last name.",
    "picture": "With profile: the picture on the page.",
    "email": "Only with the email scope, which this app does not ask for.",
    "email_verified": "Whether the provider has checked the email address.",
    "hd": "The Google Workspace domain of the account.",
}
TIME_CLAIMS = ("iat", "exp", "auth_time")
SIGNATURE_SHOWN = 8  # characters of the signature shown


def id_token_step(checked):
    """Step 5, as id_tokens.check() found it: the ID token's header and claims, each
    explained, and the key and algorithm that checked its signature, shown only in part."""
    header = [
        (name, value, ID_TOKEN_HEADER.get(name, "")) for name, value in checked["header"].items()
    ]
    claims = []
    for name, value in checked["claims"].items():
        if name in TIME_CLAIMS and isinstance(value, int):
            value = f"{value} ({datetime.fromtimestamp(value, UTC):%Y-%m-%d %H:%M:%S} UTC)"
        claims.append((name, value, ID_TOKEN_CLAIMS.get(name, "")))
    signature = checked["signature"]
    return "The ID token, checked", {
        "header": header,
        "claims": claims,
        "notes": [
            f"Signature {signature[:SIGNATURE_SHOWN]}… ({len(signature)} characters): RS256 "
            f"(RSA PKCS#1 v1.5 with SHA-256) held, by the key {checked['key']} of those "
            f"published at {checked['keys']}.",
            "Checked in the order OpenID Connect Core 3.1.3.7 gives: the algorithm, the "
            "signature, iss, aud, azp, exp and iat, the nonce, then at_hash. Any that failed "
            "would have refused the sign-in, and the tokens would have been revoked.",
        ],
    }


def notification_step(dialect, path, headers, body, what):
    """A webhook delivery from the provider (webhooks.py), as (title, what to show): the
    headers that vouch for it, each with what it is for (the dialect's WEBHOOK_HEADERS),
    the secret masked and a long signature cut short; its JSON; and what it changed."""
    sent = {name: headers[name] for name in dialect.WEBHOOK_HEADERS if name in headers}
    shown_headers = [
        (name, value if len(value) <= 24 else value[:20] + "…", dialect.WEBHOOK_HEADERS[name])
        for name, value, _ in masked_headers(sent)
    ]
    try:
        text = json.dumps(json.loads(body), indent=1)
    except ValueError:
        text = body.decode("utf-8", "replace")
    request = {"method": "POST", "url": path, "headers": shown_headers, "json": text[:MAX_BODY]}
    return f"A notification from {dialect.NAME}", {"request": request, "notes": [what]}


def exchange_step(rate_limit_headers, method, url, headers, form, json_body, response):
    """An exchange with the provider from oauth.py, as (title, what to show). A request
    carries a form or a JSON body, shown as it was sent. Of the answer's headers, those that
    tell the rate limit (the dialect's, with what each says) are shown."""
    form = dict(form or {})
    shown = {
        "request": {
            "method": method,
            "url": url,
            "headers": masked_headers(headers or {}),
            "form": [
                (name, value, FORM_FIELDS.get(name, ""))
                for name, value in masked_fields(form).items()
            ],
        }
    }
    if json_body is not None:
        shown["request"]["json"] = json.dumps(json_body, indent=1)
    query = dict(parse_qsl(urlsplit(url).query))
    listed = [
        (name, short(query[name]), why) for name, why in LIST_PARAMETERS.items() if name in query
    ]
    if listed:
        shown["request"]["query"] = listed
    if response is None:
        shown["response"] = {"status": "no answer (timeout or refused connection)"}
    else:
        shown["response"] = answer_step(rate_limit_headers, response, headers or {}, form)
    return exchange_title(method, url, form), shown


def exchange_title(method, url, form):
    path = urlsplit(url).path
    if form.get("grant_type") == "authorization_code":
        return "The token request: the code for tokens"
    if form.get("grant_type") == "refresh_token":
        return "A refresh: the refresh token for a new pair"
    if path.endswith("/revoke"):
        return "The revoke"
    if "/apiSubscriptions/" in path:  # Fitbit's webhooks, per user (see webhooks.py)
        return f"{'A subscription' if method == 'POST' else 'An unsubscription'}: {path}"
    return f"An API call: {path}"


def answer_step(rate_limit_headers, response, headers, form):
    """The answer: its status, its rate-limit headers, and its fields or its body."""
    answer = {"status": response.status_code}
    rate = [
        (name, response.headers[name], why)
        for name, why in rate_limit_headers.items()
        if name in response.headers
    ]
    if rate:
        answer["headers"] = rate
    try:
        body = response.json()
    except ValueError:
        body = None
    paging = paging_of(body)
    if paging:
        answer["paging"] = paging
    if isinstance(body, dict) and ("access_token" in body or "refresh_token" in body):
        answer["fields"] = [
            (name, masked_fields({name: value})[name], TOKEN_FIELDS.get(name, ""))
            for name, value in body.items()
        ]
        return answer
    text = json.dumps(body, indent=1) if body is not None else response.text
    # An error answer can repeat the token (Fitbit's expired_token does): masked too.
    lines = mask_tokens_in(text, headers, form)[:MAX_BODY].splitlines()
    # Long answers are folded: the first lines show their shape (<details> on the page).
    answer["body"] = "\n".join(lines[:FOLDED_AFTER])
    if len(lines) > FOLDED_AFTER:
        answer["more"] = "\n".join(lines[FOLDED_AFTER:])
    return answer


def short(value, most=48):
    return value if len(value) <= most else value[: most - 1] + "…"


def paging_of(body):
    """The fields of a list's answer that lead to its next page, explained; [] for none."""
    if not isinstance(body, dict):
        return []
    found = []
    if isinstance(body.get("nextPageToken"), str):
        found.append(
            ("nextPageToken", body["nextPageToken"][:20] + "…", PAGING_FIELDS["nextPageToken"])
        )
    pagination = body.get("pagination")
    if isinstance(pagination, dict) and isinstance(pagination.get("next"), str):
        following = pagination["next"] or "(empty: the last page)"
        found.append(("pagination.next", following, PAGING_FIELDS["pagination.next"]))
    return found


def mask_tokens_in(text, headers, form):
    """The text with any token this request carried cut down to its first 4 characters."""
    carried = [v for k, v in form.items() if k in SECRET_FIELDS or k == "code_verifier"]
    authorization = headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        carried.append(authorization[len("Bearer ") :])
    for secret in filter(None, carried):
        text = text.replace(secret, mask(secret))
    return text
