"""sandbox/store/: what a stand-in remembers, shared by every worker that opens the file.
Each part is driven directly here; the stand-ins' tests drive it through their endpoints."""

import threading
from datetime import UTC, datetime, timedelta

from sandbox.store import AuthorizationCode, ConsentRequest, Grant, RegisteredClient, Store

MOMENT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REDIRECT = "http://localhost:4000/auth/callback"


def test_the_generated_client_is_made_once_for_every_worker_of_the_file(tmp_path):
    path = tmp_path / "stand-in.db"
    first = Store(path).clients.generated(REDIRECT, lambda: "FIRST1")
    again = Store(path).clients.generated(REDIRECT, lambda: "OTHER2")  # another worker
    assert again == first and first.client_id == "FIRST1"
    assert Store(path).clients.all() == [first]


def test_a_consent_page_is_answered_once(tmp_path):
    store = Store(tmp_path / "s.db")
    client = RegisteredClient("APP123", "secret", REDIRECT)
    store.clients.register(client)
    store.consents.add("r1", ConsentRequest(client, ("activity",), "st", "", MOMENT))
    assert store.consents.take("r1").client == client
    assert store.consents.take("r1") is None


def test_a_replayed_code_forgets_the_tokens_issued_from_it(tmp_path):
    store = Store(tmp_path / "s.db")
    grant = Grant("APP123", "7QW2XR", "activity")
    store.grants.add_code("c1", AuthorizationCode(grant, REDIRECT, "", MOMENT))
    issued, replayed = store.grants.redeem_code("c1")
    assert issued.grant == grant and not replayed
    store.grants.add_tokens(grant, "access", "refresh", MOMENT + timedelta(hours=8))
    assert store.grants.redeem_code("c1") == (None, True)
    assert store.grants.access_token("access") is None
    assert store.grants.grant_of("refresh") is None


def test_of_two_workers_spending_one_refresh_token_only_one_gets_the_grant(tmp_path):
    path = tmp_path / "s.db"
    grant = Grant("APP123", "7QW2XR", "activity")
    issuer = Store(path)
    issuer.grants.add_code("c1", AuthorizationCode(grant, REDIRECT, "", MOMENT))
    issuer.grants.add_tokens(grant, "access", "refresh", MOMENT)
    workers = [Store(path) for _ in range(8)]  # a connection each, as processes have
    results, start = [], threading.Barrier(len(workers))

    def spend(store):
        start.wait()
        results.append(store.grants.spend_refresh_token("refresh", "APP123"))

    threads = [threading.Thread(target=spend, args=(store,)) for store in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [result for result in results if result is not None] == [grant]


def test_calls_are_counted_per_user_and_period(tmp_path):
    calls = Store(tmp_path / "s.db").calls
    assert [calls.add("APP123", "7QW2XR", "2026112312") for _ in range(3)] == [1, 2, 3]
    assert calls.add("APP123", "9KD3MS", "2026112312") == 1
    assert calls.add("APP123", "7QW2XR", "2026112313") == 1
