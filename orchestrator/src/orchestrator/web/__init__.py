"""The web layer: the two Tornado apps the orchestrator serves, and their pages (templates/).

- visitor.py: the visitors' app on `port` (loading page, hand-out, waiting line, saved work).
- admin.py: the admin app on `admin_port`, every admin handler, and the one rule of who gets in
  (AdminHandler.is_admin: the admin token, or loopback only when none is set).
- view.py: pure: what the admin page and the admin API show, from the pool's snapshot.
- base.py: what both apps share (headers, error pages, the token check, theme, /api/stats).

The apps touch the pool through its public methods only; the admin side reads it through
Pool.snapshot(), Pool.booking_plan() and Pool.counts() (snapshot.py), never its proxy, slots or
clocks.
"""

from orchestrator.web.admin import make_admin_app
from orchestrator.web.visitor import make_public_app, waiting_line

__all__ = ["make_admin_app", "make_public_app", "waiting_line"]
