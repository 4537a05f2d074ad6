"""published_keys.py: keys a provider publishes are fetched as a whole within a time and a
size, not one read at a time: a server that sends a byte every so often, or a body of
megabytes, is a failed fetch, and the keys kept before stay in use."""

import json
import time

import pytest
from conftest import listening, url_of
from freezegun import freeze_time
from werkzeug.wrappers import Response

import published_keys
from published_keys import KeysUnavailable, PublishedKeys, TooSlowOrLarge, fetched_json

KEYS = {"keys": [{"kid": "k1"}]}


def read(document):
    return {entry["kid"]: entry for entry in document["keys"]}


def serving(body_parts, pause=0.0):
    """A WSGI app answering every request with `body_parts`, one after another, `pause`
    seconds apart, under a Content-Length for the whole."""
    length = sum(len(part) for part in body_parts)

    def parts():
        for part in body_parts:
            yield part
            time.sleep(pause)

    def app(environ, start_response):
        response = Response(parts(), mimetype="application/json", direct_passthrough=True)
        response.headers["Content-Length"] = str(length)
        return response(environ, start_response)

    return app


def test_keys_are_fetched_and_read():
    with listening() as (server,):
        server.app = serving([json.dumps(KEYS).encode()])
        assert fetched_json(url_of(server)) == KEYS


def test_an_answer_larger_than_any_keyset_is_not_read_to_its_end():
    with listening() as (server,):
        chunk = b" " * 65536
        server.app = serving([b'{"keys": [', *[chunk] * 64, b"]}"])  # 4 MB
        with pytest.raises(TooSlowOrLarge, match="bytes"):
            fetched_json(url_of(server))


def test_an_answer_sent_a_byte_at_a_time_is_given_up_on_as_a_whole():
    """Each byte comes within requests' read timeout, so only a limit on the whole fetch
    ends it. (Each look at the clock moves it on a second.)"""
    body = json.dumps(KEYS).encode() * 50
    with listening() as (server,):
        server.app = serving([body[i : i + 1] for i in range(len(body))], pause=0.01)
        with freeze_time("2026-12-07 12:00", auto_tick_seconds=1):
            started = time.monotonic()
            with pytest.raises(TooSlowOrLarge, match="s"):
                fetched_json(url_of(server))
            assert time.monotonic() - started <= published_keys.FETCH_SECONDS + 3


def test_keys_kept_stay_in_use_when_a_later_fetch_is_too_slow_or_too_large(monkeypatch):
    with listening() as (server,):
        server.app = serving([json.dumps(KEYS).encode()])
        keys = PublishedKeys(url_of(server), read, "the test's keys")
        assert keys.key("k1") == {"kid": "k1"}
        server.app = serving([b'{"keys": [', b" " * 300_000, b"]}"])
        with freeze_time("2026-12-07 12:00") as clock:
            keys.tried_at = None  # as if the last fetch were long ago
            clock.tick(3600)
            assert keys.key("k1") == {"kid": "k1"}  # the big answer was refused, not taken
            assert keys.key("k2") is None


def test_without_any_keys_kept_a_failed_fetch_means_none_can_be_had():
    with listening() as (server,):
        server.app = serving([b'{"keys": [', b" " * 300_000, b"]}"])
        with pytest.raises(KeysUnavailable):
            PublishedKeys(url_of(server), read, "the test's keys").key("k1")
