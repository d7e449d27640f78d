"""The front door's decisions: each node's agent-check answer, the site's stats, the config."""

import pytest

from frontdoor.app import main
from frontdoor.config import ConfigError, Node, parse_config
from frontdoor.decisions import NodeStats, agent_reply, aggregate, most_free, parse_stats

A = Node("nb1", "http://10.0.0.1:8000")
B = Node("nb2", "http://10.0.0.2:8000")
DRAINED = Node("nb3", "http://10.0.0.3:8000", state="drain")


def up(available, capacity=10):
    return NodeStats(reachable=True, available=available, capacity=capacity, container_image="img")


def test_weights_follow_free_notebooks():
    stats = {"nb1": up(8), "nb2": up(2)}
    top = most_free([A, B], stats)
    assert top == 8
    assert agent_reply(A, stats["nb1"], top) == "ready 100%\n"
    assert agent_reply(B, stats["nb2"], top) == "ready 25%\n"


def test_a_nearly_full_node_keeps_a_small_weight():
    stats = {"nb1": up(200, 300), "nb2": up(1)}
    assert agent_reply(B, stats["nb2"], most_free([A, B], stats)) == "ready 1%\n"


@pytest.mark.parametrize(
    "node,stats",
    [
        (A, up(0)),  # full: its visitors stay, nobody new
        (A, NodeStats(error="ConnectionRefusedError")),  # unreachable
        (DRAINED, up(5)),  # the operator is emptying it
    ],
)
def test_full_unreachable_or_drained_nodes_drain(node, stats):
    assert agent_reply(node, stats, 5) == "drain\n"


def test_a_drained_node_does_not_set_the_scale():
    stats = {"nb1": up(2), "nb3": up(9)}
    assert most_free([A, DRAINED], stats) == 2


def test_site_stats_add_up_the_nodes():
    stats = {"nb1": up(3, 4), "nb2": up(1, 4), "nb3": up(2, 4)}
    site = aggregate([A, B, DRAINED], stats)
    assert site["available"] == 4  # the drained node's free notebooks are not for new visitors
    assert site["capacity"] == 12
    assert site["container_image"] == "img"
    assert site["nodes"]["nb3"] == {
        "available": 2,
        "capacity": 4,
        "state": "drain",
        "accepts_visitors": False,
    }


def test_an_unreachable_node_counts_for_nothing():
    stats = {"nb1": up(3, 4), "nb2": NodeStats(error="timeout")}
    site = aggregate([A, B], stats)
    assert (site["available"], site["capacity"]) == (3, 4)
    assert site["nodes"]["nb2"]["state"] == "unreachable"


def test_node_stats_are_parsed_strictly():
    assert parse_stats(b'{"available": 1, "capacity": 2, "version": "1"}').capacity == 2
    for body in (b"[]", b'{"available": -1, "capacity": 2}', b'{"available": true, "capacity": 1}'):
        with pytest.raises(ValueError):
            parse_stats(body)


def test_config_is_read_with_defaults():
    config = parse_config(
        '[[nodes]]\nname = "nb1"\nurl = "http://10.0.0.1:8000/"\n'
        '[[nodes]]\nname = "nb2"\nurl = "http://10.0.0.2:8000"\nstate = "drain"\n'
    )
    assert config.nodes == (A, Node("nb2", "http://10.0.0.2:8000", "drain"))
    assert (config.poll_period, config.port, config.agent_port) == (1.0, 9100, 9101)


@pytest.mark.parametrize(
    "text,names",
    [
        ("", "nodes"),
        ("nodes = []\npool = 1", "unknown option 'pool'"),
        ('[[nodes]]\nname = "a b"\nurl = "http://x:1"', "nodes[0].name"),
        ('[[nodes]]\nname = "a"\nurl = "x:1"', "nodes[0].url"),
        ('[[nodes]]\nname = "a"\nurl = "http://x:1"\nstate = "off"', "nodes[0].state"),
        (
            '[[nodes]]\nname = "a"\nurl = "http://x:1"\n[[nodes]]\nname = "a"\nurl = "http://y:1"',
            "unique",
        ),
        ('port = 70000\n[[nodes]]\nname = "a"\nurl = "http://x:1"', "port"),
        ('poll_period = 0\n[[nodes]]\nname = "a"\nurl = "http://x:1"', "poll_period"),
        ('agent_port = 9100\n[[nodes]]\nname = "a"\nurl = "http://x:1"', "must differ"),
        ("nodes = [", "not valid TOML"),
    ],
)
def test_bad_config_is_refused_with_one_message(text, names):
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]")):
        parse_config(text)


def test_check_config_reads_the_file_and_starts_nothing(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text('[[nodes]]\nname = "nb1"\nurl = "http://10.0.0.1:8000"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text('port = 0\n[[nodes]]\nname = "nb1"\nurl = "http://10.0.0.1:8000"\n')
    assert main(["--check-config", f"--config={good}"]) == 0
    assert main(["--check-config", f"--config={bad}"]) == 2
    assert capsys.readouterr().err == (
        "tmpnb-frontdoor: port: a TCP port between 1 and 65535 (got 0)\n"
    )
    assert main(["--check-config"]) == 2
