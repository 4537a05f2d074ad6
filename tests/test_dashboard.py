"""The signed-in page's data: profile and steps, the cache, and Fitbit's hourly budget."""

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import (
    PROFILE_URL,
    STEPS_URL,
    WORKOUTS_URL,
    api_calls,
    callback,
    fitbit_error,
    held,
    profile_body,
    sign_in,
    start_sign_in,
    steps_body,
    token_body,
)
from freezegun import freeze_time
from werkzeug.test import Client

import dialects
import fitbit_legacy
import oauth
import token_store
from chart import round_down, step_chart
from fitbit_oauth_app import create_app
from models import ApiCache, User

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"


def at(seconds):
    return freeze_time(T0 + timedelta(seconds=seconds))


def home(browser):
    response = browser.get("/")
    assert response.status_code == 200  # never an error page for any of this
    return response.get_data(as_text=True)


def chart(text):
    """The chart's bars as (height, tooltip) pairs, read from the page's inline SVG."""
    svg = re.search(r"<svg.*?</svg>", text, re.S).group(0)
    root = ET.fromstring(svg.replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1))
    assert root.get("role") == "img" and root.find(f"{SVG}title").text
    return [
        (float(rect.get("height")), rect.find(f"{SVG}title").text)
        for rect in root.iter(f"{SVG}rect")
    ]


@pytest.fixture
def signed_in(browser, fitbit):
    """Signed in at T0 and the home page seen once, so profile, steps and workouts are all
    cached."""
    with at(0):
        sign_in(browser, fitbit)
        home(browser)
    assert len(api_calls(fitbit)) == 3
    return browser


def app_with(config, **changes):
    return Client(create_app(replace(config, **changes)))


# --- The page ---------------------------------------------------------------------------


def test_page_shows_profile_and_steps(browser, fitbit):
    fitbit.get(
        PROFILE_URL,
        json={
            "user": {
                "displayName": "Alex",
                "avatar150": "https://static0.example/a.png",
                "memberSince": "2015-07-20",
            }
        },
    )
    sign_in(browser, fitbit)
    text = home(browser)
    assert '<img class="avatar" src="https://static0.example/a.png"' in text
    assert "member since 20 July 2015" in text
    assert "<strong>4,200</strong> steps today" in text
    assert "Mon 23 Nov</td><td>4,200</td>" in text  # the numbers as text, too


def test_an_avatar_that_is_not_a_web_address_is_left_out(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.replace(
        "GET", PROFILE_URL, json={"user": {"displayName": "A", "avatar": "javascript:x"}}
    )
    ApiCache.delete().execute()
    text = home(browser)
    assert "javascript:" not in text and "<img" not in text


def test_chart_draws_one_bar_per_day_in_proportion(browser, fitbit):
    values = [1000, 4000, 2500, 0, 8000]
    fitbit.get(STEPS_URL, json=steps_body(values))
    sign_in(browser, fitbit)
    fitbit.replace("GET", STEPS_URL, json=steps_body(values))
    bars = chart(home(browser))
    assert len(bars) == len(values)
    # Heights are drawn to 0.01 of a unit, the tallest bar 15% short of the top.
    expected = [v / (8000 * 1.15) * 150 for v in values]
    assert [height for height, _ in bars] == pytest.approx(expected, abs=0.01)
    assert bars[1][1] == "Fri 20 Nov: 4,000 steps"


def test_chart_has_its_dates_a_labelled_gridline_and_headroom(browser, fitbit):
    values = [1000, 4000, 2500, 0, 8123]
    fitbit.get(STEPS_URL, json=steps_body(values))
    sign_in(browser, fitbit)
    fitbit.replace("GET", STEPS_URL, json=steps_body(values))
    svg = re.search(r"<svg.*?</svg>", home(browser), re.S).group(0)
    labels = re.findall(r'<text class="([a-z-]+)"[^>]*>([^<]+)</text>', svg)
    assert labels == [
        ("grid-label", "2,000"),
        ("grid-label", "4,000"),
        ("grid-label", "6,000"),
        ("grid-label", "8,000 steps"),
        ("day", "Thu 19 Nov"),
        ("day", "Mon 23 Nov"),
    ]
    grid_y = [float(y) for y in re.findall(r'<line class="grid"[^>]* y1="([\d.]+)"', svg)]
    assert grid_y == [
        pytest.approx(150 - s / (8123 * 1.15) * 150, abs=0.01) for s in range(2000, 8001, 2000)
    ]
    tallest_top = min(float(y) for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)"', svg))
    assert tallest_top == pytest.approx(150 - 150 / 1.15, abs=0.01) and tallest_top > 0


@pytest.mark.parametrize(
    "top, grid", [(1, 1), (9, 5), (10, 10), (8123, 5000), (19999, 10000), (25000, 20000)]
)
def test_the_gridline_sits_at_a_round_number_below_the_top(top, grid):
    assert round_down(top) == grid


def test_string_and_integer_step_values_draw_the_same_chart(app, fitbit):
    pages = []
    for value_type in (str, int):
        body = {
            "activities-steps": [
                {"dateTime": f"2026-11-2{n}", "value": value_type(v)}
                for n, v in enumerate([5000, 7000, 3000], start=1)
            ]
        }
        browser = Client(app)
        sign_in(browser, fitbit, user_id=f"U{value_type.__name__}")
        fitbit.replace("GET", STEPS_URL, json=body)
        pages.append(chart(home(browser)))
    assert pages[0] == pages[1]
    assert [title for _, title in pages[0]][-1] == "Mon 23 Nov: 3,000 steps"


def test_an_absurd_step_count_is_capped_not_crashed_on(browser, fitbit):
    fitbit.get(STEPS_URL, json=steps_body([4000, 10**30]))
    sign_in(browser, fitbit)
    fitbit.replace("GET", STEPS_URL, json=steps_body([4000, 10**30]))
    bars = chart(home(browser))
    assert bars[-1][1] == f"Mon 23 Nov: {dialects.MAX_DAILY_STEPS:,} steps"


def test_empty_step_series_says_so(browser, fitbit):
    sign_in(browser, fitbit)
    fitbit.replace("GET", STEPS_URL, json={"activities-steps": []})
    text = home(browser)
    assert "Fitbit has no step data for the last month." in text and "<svg" not in text


def asks_for(text, panel):
    """Whether the page offers the button that asks for one kind of data, with its form."""
    form = re.search(r'<form method="post" action="/auth/more">(.*?)</form>', text, re.S)
    return form is not None and f'name="panel" value="{panel}"' in text


def test_without_the_activity_scope_the_steps_panel_asks_for_it(browser, fitbit):
    sign_in(browser, fitbit, scope="profile")
    text = home(browser)
    assert "Hello, Alex" in text
    assert "Your steps of each day of the last month" in text and asks_for(text, "steps")
    assert "Show my steps" in text and "<svg" not in text
    assert [c.request.url for c in api_calls(fitbit)] == [PROFILE_URL]  # no steps call


def test_without_the_profile_scope_the_user_is_known_by_their_fitbit_id(browser, fitbit):
    sign_in(browser, fitbit, scope="activity")
    text = home(browser)
    assert "Hello, ABC123" in text  # the id is all the app knows
    assert "You did not allow access to your profile" in text
    assert len(chart(text)) == 3
    assert called(fitbit) == [STEPS_URL, WORKOUTS_URL]  # no profile call


def test_a_note_about_an_unticked_profile_comes_with_a_way_to_grant_it(browser, fitbit):
    sign_in(browser, fitbit, scope="activity")
    text = home(browser)
    assert "Connect again and allow profile" in text
    assert '<a class="button" href="/auth">Connect again</a>' in text


def test_no_connect_again_button_when_everything_was_granted(browser, fitbit):
    sign_in(browser, fitbit)
    assert "Connect again" not in home(browser)


def test_insufficient_scope_from_fitbit_shows_the_profile_and_asks_again(browser, fitbit):
    """The scope taken back at Fitbit since: its panel asks for it again, nothing fails."""
    sign_in(browser, fitbit)
    fitbit.replace("GET", STEPS_URL, status=403, json=fitbit_error("insufficient_scope"))
    text = home(browser)
    assert "Hello, Alex" in text
    assert asks_for(text, "steps") and "<svg" not in text


# --- The cache --------------------------------------------------------------------------


@pytest.mark.parametrize("seconds, new_calls", [(299, 0), (300, 3)], ids=["hit", "miss"])
def test_cache_lives_five_minutes(signed_in, fitbit, seconds, new_calls):
    with at(seconds):
        home(signed_in)
    assert len(api_calls(fitbit)) == 3 + new_calls


def test_a_fresh_answer_replaces_the_cached_one(signed_in, fitbit):
    fitbit.replace("GET", PROFILE_URL, json=profile_body("Alexandra"))
    with at(299):
        assert "Hello, Alexandra" not in home(signed_in)
    with at(300):
        assert "Hello, Alexandra" in home(signed_in)


def test_ten_reloads_within_the_cache_life_make_three_calls_in_all(browser, fitbit):
    with at(0):
        sign_in(browser, fitbit)  # the callback fetches (and caches) the profile
    for second in range(0, 291, 30):  # ten views over four and a half minutes
        with at(second):
            home(browser)
    assert called(fitbit) == [PROFILE_URL, STEPS_URL, WORKOUTS_URL]


def test_calls_for_a_view_every_minute_for_twenty_minutes(browser, fitbit):
    with at(0):
        sign_in(browser, fitbit)
    for minute in range(21):
        with at(minute * 60):
            home(browser)
    # 3 at the start, then the three answers again at minutes 5, 10, 15 and 20.
    assert len(api_calls(fitbit)) == 3 + 4 * 3


def test_cache_seconds_zero_asks_fitbit_every_time(config, fitbit):
    browser = app_with(config, cache_seconds=0)
    sign_in(browser, fitbit)
    for _ in range(5):
        home(browser)
    assert len(api_calls(fitbit)) == 1 + 5 * 3


def called(fitbit):
    """The API's addresses called, in order, each without its query."""
    return [call.request.url.split("?")[0] for call in api_calls(fitbit)]


def test_cached_data_is_kept_per_user(app, fitbit):
    alex, sam = Client(app), Client(app)
    sign_in(alex, fitbit, name="Alex")
    sign_in(sam, fitbit, name="Sam", user_id="SAM1")
    assert "Hello, Alex" in home(alex) and "Hello, Sam" in home(sam)


def test_disconnect_deletes_the_cached_data(signed_in, fitbit):
    fitbit.post(fitbit_legacy.REVOKE_URL, json={})
    with at(1):  # the session is a minute old, whatever today's date
        token = re.search(r'name="csrf_token" value="([^"]+)"', home(signed_in)).group(1)
        signed_in.post("/auth/revoke", data={"csrf_token": token})
    assert ApiCache.select().count() == 0


# --- Fitbit's hourly budget ---------------------------------------------------------------


def rate_limited(fitbit, url, reset_seconds):
    """From now on Fitbit answers `url` with a 429, as when the hour's budget is spent."""
    fitbit.replace(
        "GET",
        url,
        status=429,
        json=fitbit_error("system"),
        headers={"Fitbit-Rate-Limit-Reset": str(reset_seconds)},
    )


def test_429_with_cached_data_shows_it_with_a_note(signed_in, fitbit):
    rate_limited(fitbit, PROFILE_URL, 1440)
    with at(360):
        text = home(signed_in)
    assert "Hello, Alex" in text and len(chart(text)) == 3  # the cached answers
    assert "fresh data comes after 12:30 UTC (in 24 minutes)" in text
    assert len(api_calls(fitbit)) == 4  # the 429, and no other call after it


def test_429_without_cached_data_shows_the_note_alone(browser, fitbit):
    with at(0):
        sign_in(browser, fitbit)
    rate_limited(fitbit, STEPS_URL, 600)
    with at(0):
        text = home(browser)
    assert "fresh data comes after 12:10 UTC" in text
    assert "<svg" not in text and "Fitbit has no step data" not in text


def test_a_spent_budget_makes_no_calls_until_the_hour_turns(browser, fitbit):
    with at(0):
        sign_in(browser, fitbit)
        fitbit.replace(
            "GET",
            STEPS_URL,
            json=steps_body(),
            headers={"Fitbit-Rate-Limit-Remaining": "0", "Fitbit-Rate-Limit-Reset": "900"},
        )
        home(browser)
    with at(400):  # the cache is stale, but no calls are left this hour
        text = home(browser)
    assert len(api_calls(fitbit)) == 2
    assert "fresh data comes after 12:15 UTC" in text and len(chart(text)) == 3
    with at(900):  # the budget is back
        home(browser)
    assert len(api_calls(fitbit)) == 4


def sign_in_while_spent(browser, fitbit, reset_seconds, **token_overrides):
    """A sign-in whose profile call finds the user's hour of calls spent (a 429)."""
    query = start_sign_in(browser)
    fitbit.upsert("POST", fitbit_legacy.TOKEN_URL, json=token_body(**token_overrides))
    reset = {"Fitbit-Rate-Limit-Reset": str(reset_seconds)}
    fitbit.upsert("GET", PROFILE_URL, status=429, json=fitbit_error("system"), headers=reset)
    fitbit.upsert("POST", fitbit_legacy.REVOKE_URL, json={})
    return callback(browser, query["state"])


def test_a_sign_in_with_the_budget_spent_signs_in_and_says_when_the_data_comes(
    app, signed_in, fitbit
):
    """Alex, signed in at 12:00, signs in again in another browser at 12:10, when this app
    has spent their hour of calls. Fitbit's token answer named them: they are signed in with
    the new pair, under the name kept, and the page says when fresh data comes. Nothing is
    revoked (Fitbit's revoke would end the first browser's tokens too), and nothing more is
    asked of Fitbit until the budget is back."""
    other = Client(app)
    with at(600):
        back = sign_in_while_spent(other, fitbit, 1500, access_token="new-a", refresh_token="new-r")
        assert back.status_code == 302 and back.headers["Location"] == "/"
        text = home(other)
        assert "You are signed in with Fitbit." in text and "Hello, Alex" in text
        assert "fresh data comes after 12:35 UTC (in 25 minutes)" in text
        assert len(chart(text)) == 3  # the steps kept from 12:00
        assert "Hello, Alex" in home(signed_in)  # the first browser is still signed in
    user = User.get()
    assert (held(user).access_token, held(user).refresh_token) == ("new-a", "new-r")
    assert (user.rate_remaining, user.rate_reset_at) == (0, T0 + timedelta(seconds=2100))
    assert not [call for call in fitbit.calls if call.request.url == fitbit_legacy.REVOKE_URL]
    assert len(api_calls(fitbit)) == 4  # the three of 12:00, and the 429
    fitbit.replace("GET", PROFILE_URL, json=profile_body())
    with at(2100):
        home(other)
    assert len(api_calls(fitbit)) == 7  # the budget is back: profile, steps and workouts


def test_a_first_sign_in_with_the_budget_spent_shows_the_user_id_until_the_profile_comes(
    app, browser, fitbit
):
    with at(0):
        assert sign_in_while_spent(browser, fitbit, 600).status_code == 302
        assert "Hello, ABC123" in home(browser)
        assert User.get().display_name == "ABC123"
    fitbit.replace("GET", PROFILE_URL, json=profile_body("Alex"))
    fitbit.upsert("GET", STEPS_URL, json=steps_body())
    with at(600):
        assert "Hello, Alex" in home(browser)
        users = Client(app).get("/users").get_data(as_text=True)
    assert User.get().display_name == "Alex" and "Alex" in users


def test_the_budget_is_recorded_from_fitbits_headers(browser, fitbit):
    fitbit.get(
        PROFILE_URL,
        json=profile_body(),
        headers={"Fitbit-Rate-Limit-Remaining": "87", "Fitbit-Rate-Limit-Reset": "1200"},
    )
    with at(0):
        sign_in(browser, fitbit)
    user = User.get()
    assert (user.rate_remaining, user.rate_reset_at) == (87, T0 + timedelta(seconds=1200))


def test_a_twenty_digit_budget_from_fitbit_is_capped_before_it_is_kept(browser, fitbit):
    huge = {"Fitbit-Rate-Limit-Remaining": "9" * 20, "Fitbit-Rate-Limit-Reset": "9" * 20}
    fitbit.get(PROFILE_URL, json=profile_body(), headers=huge)
    with at(0):
        response = sign_in(browser, fitbit)
        assert response.status_code == 302
        assert home(browser)  # and every page after it works
    user = User.get()
    assert (user.rate_remaining, user.rate_reset_at) == (
        fitbit_legacy.MAX_RATE_BUDGET,
        T0 + timedelta(hours=1),
    )


# --- /users -----------------------------------------------------------------------------


def make_users(count):
    for n in range(count):
        tokens = oauth.Tokens(f"U{n:04}", "a", "r", T0 + timedelta(hours=8), "profile")
        with freeze_time(T0 + timedelta(seconds=n)):
            token_store.sign_in(
                dialects.Person("fitbit", tokens.user_id, None, f"Person {n}"), tokens
            )


@pytest.mark.parametrize(
    "count, page, status, first, last",
    [
        (0, "1", 200, None, None),
        (0, "2", 404, None, None),
        (50, "1", 200, "U0000", "U0049"),
        (50, "2", 404, None, None),
        (51, "1", 200, "U0000", "U0049"),
        (51, "2", 200, "U0050", "U0050"),
        (51, "3", 404, None, None),
        (120, "3", 200, "U0100", "U0119"),
    ],
)
def test_users_page_boundaries(app, count, page, status, first, last):
    make_users(count)
    response = Client(app).get("/users", query_string={"page": page})
    assert response.status_code == status
    ids = re.findall(r"<code>(U\d{4})</code>", response.get_data(as_text=True))
    assert (ids[0] if ids else None, ids[-1] if ids else None) == (first, last)
    assert len(ids) <= 50


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "", "²", "9" * 40])
def test_a_bad_page_number_is_a_400(app, page):
    response = Client(app).get("/users", query_string={"page": page})
    assert response.status_code == 400
    assert "whole number" in response.get_data(as_text=True)


def test_users_page_links_to_its_neighbours(app):
    make_users(120)
    text = Client(app).get("/users?page=2").get_data(as_text=True)
    assert 'href="/users?page=1"' in text and 'href="/users?page=3"' in text
    assert "Page 2 of 3" in text


def test_users_page_shows_connection_expiry_and_last_sync(app, browser, fitbit):
    with at(0):
        sign_in(browser, fitbit)
        make_users(1)
    with at(125):
        text = Client(app).get("/users").get_data(as_text=True)
    assert "expires in 7 hours" in text
    assert "2 minutes ago" in text  # Alex's last sync, at sign-in
    assert "never" in text  # Person 0 has never been synced


def test_users_page_right_after_a_sync_says_just_now(app, browser, fitbit):
    with at(0):
        sign_in(browser, fitbit)
        users = browser.get("/users").get_data(as_text=True)
    assert "just now" in users and "in 0 seconds" not in users


@pytest.mark.parametrize(
    "top, scale",
    [
        (1, [1]),
        (9, [2, 4, 6, 8]),
        (100, [50, 100]),
        (8123, [2000, 4000, 6000, 8000]),
        (12000, [5000, 10000]),
        (25000, [10000, 20000]),
    ],
)
def test_the_scale_has_two_to_five_gridlines_at_round_numbers(top, scale):
    chart = step_chart([(date(2026, 11, 22), 0), (date(2026, 11, 23), top)])
    assert [line["steps"] for line in chart["grid"]] == scale
    # Each gridline sits at its height, under the headroom above the tallest bar.
    assert all(0 < line["y"] < 150 for line in chart["grid"])
