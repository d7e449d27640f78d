"""Every Prometheus metric the orchestrator exports is documented in docs/operations.md and drawn
by the Grafana dashboard, and the dashboard is a file Grafana can import.

A metric added to metrics.py without a line in the operator's guide or a panel fails here.
"""

import json
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
OPERATIONS = REPO / "docs" / "operations.md"
DASHBOARD = REPO / "docs" / "grafana" / "tmpnb-dashboard.json"
# Metrics that are deliberately left off the dashboard, each with the reason.
NOT_ON_DASHBOARD: dict[str, str] = {}


def exported_names() -> list[str]:
    """The names an operator queries: counters with _total, info with _info, others as they are."""
    from orchestrator.metrics import Metrics

    suffix = {"counter": "_total", "info": "_info"}
    return sorted(
        family.name + suffix.get(family.type, "") for family in Metrics().registry.collect()
    )


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return found


def queries(board: dict) -> list[str]:
    exprs = [target["expr"] for panel in panels(board) for target in panel.get("targets", [])]
    for variable in board["templating"]["list"]:
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else query or "")
    return exprs


def mentions(text: str, name: str) -> bool:
    """`name` as a whole metric name, or a histogram's series of it."""
    return re.search(rf"\b{re.escape(name)}(_bucket|_sum|_count)?\b", text) is not None


def test_every_metric_has_the_project_prefix():
    assert all(name.startswith("tmpnb_") for name in exported_names())


@pytest.mark.parametrize("name", exported_names())
def test_metric_is_documented(name):
    # A row of the metrics table: | `name` | type | labels | meaning | query |
    rows = [
        line for line in OPERATIONS.read_text().splitlines() if line.startswith(f"| `{name}` |")
    ]
    assert rows, f"{name}: no row in the metrics table of {OPERATIONS.relative_to(REPO)}"
    assert len(rows[0].split("|")) == 7, f"{name}: its row needs type, labels, meaning and a query"


@pytest.mark.parametrize("name", exported_names())
def test_metric_is_on_the_dashboard(name):
    if name in NOT_ON_DASHBOARD:
        return
    assert any(mentions(expr, name) for expr in queries(dashboard())), (
        f"{name}: no panel of {DASHBOARD.relative_to(REPO)} queries it "
        "(add one, or list it in NOT_ON_DASHBOARD with a reason)"
    )


def test_dashboard_is_importable():
    board = dashboard()
    assert board["title"] and board["uid"]
    assert [item["name"] for item in board["__inputs"]] == ["DS_PROMETHEUS"]
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels(board):
        assert panel["title"], f"panel {panel['id']} has no title"
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert "$instance" in target["expr"], f"{panel['title']}: ignores the server variable"
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, f"{panel['title']}: wider than the grid"
