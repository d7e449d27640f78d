"""The line of visitors waiting for a notebook: first come, first served, and nobody holds a place
they stopped asking for.

A visitor who finds every notebook busy gets a ticket (a random id the busy page's cookie
carries) at the end of the line. Each retry of the busy page shows the ticket and keeps it alive;
a ticket not shown for `ttl` seconds is dropped, so a visitor who closed the tab stops holding
their place within `ttl`. A visitor may take a notebook when fewer people are ahead of them than
notebooks are ready: the one at the head of the line gets the next free notebook, and a newcomer
(no ticket) gets one only when nobody is waiting for it.

The line cannot hold the pool: tickets expire, the line is bounded (`capacity`; beyond it a
visitor is told to come back later), and one address holds at most `per_address` tickets when
that is set. Nothing here does I/O or reads the clock: callers pass `now` (monotonic seconds).

One ticket, one notebook: a request that is being served *claims* its ticket (before its first
await), so a second request with the same ticket (the page's refresh and its "check now" button)
cannot take a second notebook; once served, the ticket remembers the notebook's URL for `ttl`
seconds, and a late duplicate is sent to that same notebook.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Ticket:
    id: str
    address: str
    joined: float
    seen: float
    claimed: bool = False  # one of its requests is being handed a notebook now
    served_url: str | None = None  # the notebook it was given


class WaitingLine:
    def __init__(self, capacity: int, ttl: float, per_address: int = 0) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self.per_address = per_address  # 0: no limit
        self._tickets: OrderedDict[str, Ticket] = OrderedDict()  # in order of arrival
        self._served: dict[str, Ticket] = {}  # given a notebook, remembered for `ttl`

    def __len__(self) -> int:
        return len(self._tickets)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._tickets

    def expire(self, now: float) -> list[str]:
        """Drop the tickets not shown for `ttl` seconds; return their ids."""
        gone = [ticket.id for ticket in self._tickets.values() if now - ticket.seen > self.ttl]
        for ticket_id in gone:
            del self._tickets[ticket_id]
        for ticket_id in [t.id for t in self._served.values() if now - t.seen > self.ttl]:
            del self._served[ticket_id]
        return gone

    def show(self, ticket_id: str | None, now: float) -> Ticket | None:
        """The ticket a visitor presents, kept alive; None if it is unknown or expired."""
        ticket = (
            (self._tickets.get(ticket_id) or self._served.get(ticket_id)) if ticket_id else None
        )
        if ticket is None or now - ticket.seen > self.ttl:
            return None
        ticket.seen = now
        return ticket

    def join(self, ticket_id: str, address: str, now: float) -> Ticket | None:
        """A new ticket at the end of the line; None when the line (or this address) is full."""
        if len(self._tickets) >= self.capacity or ticket_id in self._tickets:
            return None
        if self.per_address:
            held = sum(1 for ticket in self._tickets.values() if ticket.address == address)
            if held >= self.per_address:
                return None
        ticket = Ticket(ticket_id, address, now, now)
        self._tickets[ticket_id] = ticket
        return ticket

    def ahead_of(self, ticket: Ticket | None) -> int:
        """How many visitors are ahead: everyone for a newcomer."""
        if ticket is None or ticket.id not in self._tickets:
            return len(self._tickets)
        for position, ticket_id in enumerate(self._tickets):
            if ticket_id == ticket.id:
                return position
        raise AssertionError("unreachable")  # pragma: no cover

    def may_take(self, ticket: Ticket | None, available: int) -> bool:
        """True when a ready notebook is left for this visitor after those ahead of them, and
        no other request of theirs is being served or was served."""
        if ticket is not None and (ticket.claimed or ticket.served_url is not None):
            return False
        return self.ahead_of(ticket) < available

    def claim(self, ticket: Ticket | None) -> None:
        """A request of this ticket is being handed a notebook (call before any await)."""
        if ticket is not None:
            ticket.claimed = True

    def unclaim(self, ticket: Ticket | None) -> None:
        """That request got nothing: the ticket keeps its place."""
        if ticket is not None:
            ticket.claimed = False

    def serve(self, ticket: Ticket, url: str, now: float) -> None:
        """The ticket got the notebook at `url`: its place goes to the next, and a duplicate
        request within `ttl` is sent to the same notebook."""
        self._tickets.pop(ticket.id, None)
        ticket.claimed, ticket.served_url, ticket.seen = False, url, now
        self._served[ticket.id] = ticket

    def leave(self, ticket: Ticket | None) -> None:
        """The visitor got a notebook (or gave up): their place goes to the next."""
        if ticket is not None:
            self._tickets.pop(ticket.id, None)
