"""The line of waiting visitors: first come, first served; tickets expire; the line is bounded."""

from orchestrator.waiting import WaitingLine

TTL = 30


def line_of(*names, capacity=100, per_address=0):
    line = WaitingLine(capacity, TTL, per_address)
    tickets = [line.join(name, f"10.0.0.{n}", now=n) for n, name in enumerate(names)]
    return line, tickets


def test_the_first_to_wait_gets_the_first_free_notebook():
    line, (first, second) = line_of("a", "b")
    assert line.may_take(first, available=1)
    assert not line.may_take(second, available=1)
    assert not line.may_take(None, available=1)  # a newcomer waits behind both
    line.leave(first)
    assert line.may_take(second, available=1)
    assert not line.may_take(None, available=1)


def test_a_newcomer_takes_a_notebook_only_when_nobody_waits_for_it():
    line, _ = line_of("a", "b")
    assert not line.may_take(None, available=2)
    assert line.may_take(None, available=3)
    assert WaitingLine(10, TTL).may_take(None, available=1)
    assert not WaitingLine(10, TTL).may_take(None, available=0)


def test_a_ticket_shown_keeps_its_place_and_one_not_shown_expires():
    line, (_, second) = line_of("a", "b")
    assert line.show("b", now=TTL) is second  # b keeps asking, a left at 0
    assert line.expire(now=TTL + 0.5) == ["a"]
    assert line.show("a", now=TTL + 1) is None
    assert line.ahead_of(second) == 0 and line.may_take(second, available=1)


def test_a_ticket_past_its_time_is_not_accepted_even_before_expire_runs():
    line, _ = line_of("a")
    assert line.show("a", now=TTL + 1) is None
    assert line.show(None, now=0) is None and line.show("forged", now=0) is None


def test_positions_count_those_ahead():
    line, tickets = line_of("a", "b", "c")
    assert [line.ahead_of(ticket) for ticket in tickets] == [0, 1, 2]
    assert line.ahead_of(None) == 3
    line.leave(tickets[1])
    assert line.ahead_of(tickets[2]) == 1 and len(line) == 2
    line.leave(tickets[1])  # leaving twice is harmless
    assert len(line) == 2


def test_the_line_is_bounded_overall_and_per_address():
    line, _ = line_of("a", "b", capacity=2)
    assert line.join("c", "10.0.0.9", now=3) is None
    per_address = WaitingLine(10, TTL, per_address=1)
    assert per_address.join("a", "10.0.0.1", now=0) is not None
    assert per_address.join("b", "10.0.0.1", now=0) is None
    assert per_address.join("c", "10.0.0.2", now=0) is not None
    assert per_address.join("c", "10.0.0.3", now=0) is None  # an id is never reused


def test_many_waiters_are_served_in_order():
    line = WaitingLine(200, TTL)
    tickets = [line.join(str(n), "10.0.0.1", now=0) for n in range(200)]
    served = []
    while len(line):
        now = 1
        for ticket in reversed(tickets):  # the last to come asks first
            if ticket.id in line and line.show(ticket.id, now) and line.may_take(ticket, 1):
                line.leave(ticket)
                served.append(int(ticket.id))
                break
    assert served == list(range(200))
