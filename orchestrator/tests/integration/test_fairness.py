"""Fair shares through the real configurable-http-proxy: the per-address limit sees the real
client address whatever X-Forwarded-For a visitor sends, and a visitor who waits keeps their
place in line ahead of one who just arrived."""

import requests
from nbtest import wait_for


def spawn(stack, session=None, forwarded_for=None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return (session or requests).get(
        f"{stack.proxy.url}/spawn/tree", headers=headers, allow_redirects=False, timeout=30
    )


def test_one_address_gets_at_most_max_per_address_whatever_it_claims(make_stack):
    # configurable-http-proxy is the only proxy in front (trusted_proxy_hops=1, the default): it
    # appends the address it saw, so the entries a visitor writes are ignored.
    stack = make_stack(pool_size=2, max_per_address=1)
    assert spawn(stack, forwarded_for="203.0.113.1").status_code == 302
    again = spawn(stack, forwarded_for="203.0.113.2")
    assert again.status_code == 429
    assert "You already have a notebook" in again.text
    assert int(again.headers["Retry-After"]) > 0
    assert stack.stats()["available"] == 1  # kept for someone else


def test_behind_a_front_door_each_visitor_address_counts(make_stack):
    # A front door (HAProxy, `option forwardfor`) before the proxy: what it would send is the
    # visitor's address, possibly after entries the visitor wrote.
    stack = make_stack(pool_size=3, max_per_address=1, trusted_proxy_hops=2)
    assert spawn(stack, forwarded_for="203.0.113.1").status_code == 302
    assert spawn(stack, forwarded_for="198.51.100.9, 203.0.113.1").status_code == 429
    assert spawn(stack, forwarded_for="203.0.113.2").status_code == 302
    assert stack.stats()["available"] == 1


def test_a_visitor_who_waits_keeps_their_place_ahead_of_a_newcomer(make_stack):
    # The one notebook is taken and never used, so the culler frees it after cull_timeout.
    stack = make_stack(pool_size=1, max_waiting=2, cull_timeout=4, cull_period=1)
    stack.spawn()
    waiter, newcomer, third = requests.Session(), requests.Session(), requests.Session()
    first = spawn(stack, waiter)
    assert first.status_code == 429 and "tmpnb_wait" in waiter.cookies
    assert "All notebooks are busy" in first.text
    assert spawn(stack, newcomer).status_code == 429
    full = spawn(stack, third)
    assert full.status_code == 429 and "Too many people are waiting" in full.text

    # The newcomer always asks first; without a line it would take the freed notebook.
    def waiter_served() -> bool:
        assert spawn(stack, newcomer).status_code == 429, "the newcomer jumped the line"
        answer = spawn(stack, waiter)
        assert answer.status_code in (302, 429), answer.text[:300]
        return answer.status_code == 302

    wait_for(waiter_served, 180, "the waiter to get the freed notebook", interval=1)
    assert "tmpnb_wait" not in waiter.cookies  # served: the ticket is given back
    # The newcomer is now first in line; the pool of one is in use again, also after the pool
    # looked at itself once more.
    stack.wait_passes("reconcile_once")
    still_waiting = spawn(stack, newcomer)
    assert still_waiting.status_code == 429 and "All notebooks are busy" in still_waiting.text
