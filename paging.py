"""A list that comes a page at a time (a dialects.Paging), fetched to its end: up to its
bound, and each page after the first only while the user's budget of calls can spare it,
so that a long list never leaves the signed-in page's other panels unread. The pages are
kept as one answer (dashboard.Dashboard.api_data), so a cached view asks for none of them.
"""

import oauth


def every_page(client, user, api, first, pages):
    """Every page of a list, from `first` on, kept as one answer (pages.kept): up to
    pages.most of them, and each after the first only while the budget can spare it for
    the rest of the page (can_spare()). Where the paging stopped short is kept with it:
    "pages" or "budget", for the panel to say."""
    dialect = client.dialect
    bodies, request, stopped = [], first, ""
    while request is not None:
        if len(bodies) == pages.most:
            stopped = "pages"
            break
        if bodies and not can_spare(dialect, user):
            stopped = "budget"
            break
        try:
            body, headers = api.call(request)
        except oauth.RateLimited as error:
            if not bodies:
                raise
            user.record_budget(0, error.reset_at)  # what came is kept, and said to be short
            stopped = "budget"
            break
        user.record_budget(*dialect.rate_budget(headers))
        bodies.append(body)
        request = pages.next_request(client, request, body)
    return pages.kept(bodies, stopped)


def can_spare(dialect, user):
    """Whether the user's budget of calls, as the provider last reported it, leaves one
    more page and a call for each other kind of data and the profile on this view. A
    provider that reports none (Google) is held to the list's bound alone."""
    reserve = len(dialect.DATA) + 1
    return user.rate_remaining is None or user.rate_remaining > reserve
