"""Options: tmpnb's names and defaults, both spellings, the config file, one-line errors, the
rules across options, and the values the Config derives once."""

from datetime import UTC, datetime

import pytest

from orchestrator.config import check_main, parse
from orchestrator.options import (
    DEFAULT_COMMAND,
    OPTIONS_BY_NAME,
    CommandTemplate,
    ConfigError,
    help_text,
    host_binds,
    page_links,
)

ENV = {"CONFIGPROXY_AUTH_TOKEN": "secret"}
ANY_IP = "0.0.0.0"  # noqa: S104 (a value to substitute, nothing binds)
TOKEN = "t"  # noqa: S105 (a test value)

# Every option in tmpnb's README with the default it documents.
TMPNB_DEFAULTS = {
    "allow_origin": None,
    "container_ip": "127.0.0.1",
    "container_port": 8888,
    "cpu_shares": None,
    "cull_period": 600,
    "cull_timeout": 3600,
    "docker_version": "1.13",
    "image": "jupyter/minimal",
    "max_dock_workers": 2,
    "mem_limit": "512m",
    "pool_name": None,
    "pool_size": 10,
    "port": 9999,
    "redirect_uri": "/tree",
    "static_files": None,
}
TMPNB_LATER = [
    "cull_max", "cpu_quota", "host_network", "docker_network", "use_tokens", "user_length",
    "container_user", "host_directories", "extra_hosts", "admin_port", "admin_ip",
    "allow_credentials", "allow_headers", "allow_methods", "command",
]  # fmt: skip


def test_tmpnb_options_keep_their_names_and_defaults():
    config = parse([], ENV)
    for name, default in TMPNB_DEFAULTS.items():
        assert getattr(config, name) == default, name
    for name in TMPNB_LATER:
        assert name in OPTIONS_BY_NAME


def test_help_lists_every_option_with_its_default():
    text = help_text("tmpnb-orchestrator")
    for name in OPTIONS_BY_NAME:
        assert f"--{name} " in text
    assert "(default 9999)" in text


@pytest.mark.parametrize("spelling", ["--pool_size=3", "--pool-size=3", "--pool_size 3"])
def test_both_spellings_are_accepted(spelling):
    assert parse(spelling.split(), ENV).pool_size == 3


def test_bare_boolean_flag_means_true():
    assert parse(["--use_tokens"], ENV).use_tokens is True
    assert parse(["--use-tokens=false"], ENV).use_tokens is False


def test_command_line_overrides_the_config_file(tmp_path):
    path = tmp_path / "orchestrator.toml"
    path.write_text(
        'pool_size = 4\nimage = "x/y"\ncull-timeout = 60\ncull_period = 30\n'
        'extra_hosts = ["a:1.2.3.4"]\n'
    )
    config = parse([f"--config={path}", "--pool_size=7"], ENV)
    assert (config.pool_size, config.image, config.cull_timeout) == (7, "x/y", 60.0)
    assert config.extra_hosts == ["a:1.2.3.4"]


def test_proxy_endpoint_comes_from_the_environment():
    env = {**ENV, "CONFIGPROXY_ENDPOINT": "http://10.0.0.1:8001"}
    assert parse([], env).proxy_endpoint == "http://10.0.0.1:8001"


def test_secrets_come_from_the_environment_and_are_not_in_repr():
    api, admin = "a" * 32, "b" * 32
    config = parse([], {**ENV, "API_AUTH_TOKEN": api, "ADMIN_AUTH_TOKEN": admin})
    assert (config.proxy_token, config.api_token, config.admin_token) == ("secret", api, admin)
    assert "secret" not in repr(config)


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--pool_size=0"], "--pool_size"),
        (["--pool_size=many"], "--pool_size"),
        (["--pool_size=1.5"], "--pool_size"),
        (["--port=70000"], "--port"),
        (["--admin_port=0"], "--admin_port"),
        (["--container_port=-1"], "--container_port"),
        (["--cull_timeout=0"], "--cull_timeout"),
        (["--cull_period=soon"], "--cull_period"),
        (["--cull_max=-1"], "--cull_max"),
        (["--mem_limit=lots"], "--mem_limit"),
        (["--cpu_shares=1"], "--cpu_shares"),
        (["--cpu_quota=10"], "--cpu_quota"),
        (["--max_dock_workers=0"], "--max_dock_workers"),
        (["--docker_version=new"], "--docker_version"),
        (["--pool_name=bad name"], "--pool_name"),
        (["--redirect_uri=tree"], "--redirect_uri"),
        (["--command=jupyter notebook"], "--command"),
        (["--command=start {base_path} {nope}"], "--command"),
        (["--host_directories=relative:/x"], "--host_directories"),
        (["--extra_hosts=nocolon"], "--extra_hosts"),
        (["--use_tokens=maybe"], "--use_tokens"),
        (["--user_length=4"], "--user_length"),
        (["--proxy_endpoint=ftp://x"], "--proxy_endpoint"),
        (["--proxy_public_url=nonsense"], "--proxy_public_url"),
        (["--ready_timeout=0"], "--ready_timeout"),
        (["--reconcile_period=0"], "--reconcile_period"),
        (["--pids_limit=1"], "--pids_limit"),
        (["--container_user=a b"], "--container_user"),
        (["--docker_network=-bad"], "--docker_network"),
        (["--static_files=rel"], "--static_files"),
        (["--static_dump_path=rel"], "--static_dump_path"),
        (["--no_such_option=1"], "--no_such_option"),
        (["--image"], "--image"),
        (["positional"], "positional"),
        (["--host_network", "--docker_network=n"], "--host_network"),
        (["--config=/nonexistent/file.toml"], "--config"),
        (["--title=" + "x" * 81], "--title"),
        (["--message=bell\x07"], "--message"),
        (["--logo=/etc/hostname"], "--logo"),
        (["--logo=/nonexistent/logo.png"], "--logo"),
        (["--links=no separator"], "--links"),
        (["--links=Bad|javascript:alert(1)"], "--links"),
        (["--links=Bad|//elsewhere.example/x"], "--links"),
        (["--links=|https://example.org"], "--links"),
        (["--max_per_address=-1"], "--max_per_address"),
        (["--trusted_proxy_hops=-1"], "--trusted_proxy_hops"),
        (["--max_waiting=-1"], "--max_waiting"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_option(argv, names):
    with pytest.raises(ConfigError) as caught:
        parse(argv, ENV)
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_a_missing_proxy_token_is_named():
    with pytest.raises(ConfigError, match="CONFIGPROXY_AUTH_TOKEN"):
        parse([], {})


def test_a_bad_config_file_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("pool_size = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse([f"--config={path}"], ENV)
    path.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        parse([f"--config={path}"], ENV)


@pytest.mark.parametrize(
    ("version", "negotiate"), [("1.13", True), ("1.23", True), ("1.41", False), ("auto", True)]
)
def test_docker_versions_below_1_24_mean_negotiate(version, negotiate):
    assert parse([f"--docker_version={version}"], ENV).negotiate_docker_version is negotiate


def test_commands_become_argument_lists_without_a_shell():
    argv = CommandTemplate.parse(DEFAULT_COMMAND).render(
        base_path="/user/ab/",
        port=8888,
        ip=ANY_IP,
        token="T0KEN",  # noqa: S106
    )
    # The token is not on the command line, which any account on the host can read: the
    # notebook gets it in its environment (container_spec.py).
    assert argv == ["start-notebook", "--base-path=/user/ab/", "--port=8888", "--ip=0.0.0.0"]
    assert "T0KEN" not in " ".join(argv)
    tmpnb = (
        'ipython3 notebook --NotebookApp.base_url={base_path} --ip={ip} --port={port}; rm -rf "/"'
    )
    argv = CommandTemplate.parse(tmpnb).render(base_path="/user/ab/", port=1, ip=ANY_IP, token="")
    assert argv[-4:] == ["--port=1;", "rm", "-rf", "/"]  # passed as words, never run by a shell
    assert argv[0] == "ipython3"


def test_host_directories_accept_tmpnb_and_docker_forms():
    binds = host_binds(["/data/:r", "/srv/a:/home/jovyan/a:ro", "/scratch"])
    assert binds == {
        "/data/": {"bind": "/data/", "mode": "ro"},
        "/srv/a": {"bind": "/home/jovyan/a", "mode": "ro"},
        "/scratch": {"bind": "/scratch", "mode": "rw"},
    }


def test_the_theme_options_take_text_a_logo_and_links(tmp_path):
    logo = tmp_path / "logo.svg"
    logo.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    path = tmp_path / "theme.toml"
    path.write_text(
        'title = "Data <b>Carpentry</b>"\n'
        f'logo = "{logo}"\n'
        'message = """Welcome!\n\nAsk a helper."""\n'
        'links = ["Notes|https://example.org/notes?a=1&b=2", "Slides, part 1|/slides"]\n'
    )
    config = parse([f"--config={path}"], ENV)
    assert config.title == "Data <b>Carpentry</b>"  # kept as typed; the pages escape it
    assert config.logo == str(logo)
    assert config.page_links == (
        ("Notes", "https://example.org/notes?a=1&b=2"),
        ("Slides, part 1", "/slides"),
    )
    assert config.logo_type == "image/svg+xml"
    assert page_links(config.links) == list(config.page_links)


def test_fairness_defaults_suit_a_room_behind_one_address_and_the_proxy_in_front():
    config = parse([], ENV)
    assert config.max_per_address == 0
    assert config.trusted_proxy_hops == 1
    assert config.max_waiting > 0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--cull_period=7200"], "--cull_period (7200) must not be longer than --cull_timeout"),
        (["--cull_max=600"], "--cull_max (600) must be 0 or at least --cull_timeout"),
        (["--mem_limit=0"], "--mem_limit: got '0'"),
        (["--mem_limit=64m"], "--mem_limit: got '64m'"),
        (["--disk_limit=1g", "--mem_limit=512m"], "--disk_limit (1g) must be smaller"),
        (["--disk_limit=1m"], "--disk_limit: got '1m'"),
        (["--disk_limit=64m", "--keep_max_mb=64"], "--keep_max_mb (64) must be less than"),
        (["--keep_max_mb=2048"], "--keep_max_mb: got 2048"),
        (["--host_network"], "--host_network and --docker_network: choose one"),
        (
            ["--host_network", "--docker_network=", "--command=start {base_path} --ip=0.0.0.0"],
            "--command must bind to {ip} with --host_network",
        ),
        (["--port=10000"], "--port and --admin_port must differ (both are 10000)"),
        (["--port=8001"], "--port (8001) must differ from the port of --proxy_endpoint"),
        (["--admin_port=8000"], "--admin_port (8000) must differ from the port of --proxy_public"),
        (
            ["--ip=10.0.0.5", "--port=80", "--proxy_public_url=http://10.0.0.5"],
            "--port (80) must differ from the port of --proxy_public_url",
        ),
    ],
)
def test_rules_across_options_are_refused_naming_the_options(argv, named):
    with pytest.raises(ConfigError) as refused:
        parse(argv, ENV)
    assert named in str(refused.value)


def test_saved_work_may_match_the_disk_when_nothing_is_kept_or_the_disk_is_unlimited():
    assert parse(["--disk_limit=64m", "--keep_max_mb=64", "--keep_hours=0"], ENV).keep_max_mb == 64
    assert parse(["--disk_limit=0", "--keep_max_mb=512"], ENV).keep_max_mb == 512


def test_defaults_are_safe_without_the_role():
    config = parse([], ENV)
    assert config.use_tokens is True
    assert config.docker_network == "tmpnb-notebooks"  # made with inter-container traffic off
    assert config.cpu_quota == 100000
    assert config.disk_limit == "256m"
    assert "{token}" not in config.command


def test_an_empty_network_unsets_it_for_the_host_network():
    config = parse(["--host_network", "--docker_network="], ENV)
    assert config.host_network is True and config.docker_network is None


def test_checking_a_configuration_needs_no_token():
    assert parse(["--pool_size=3"], {}, require_token=False).pool_size == 3
    with pytest.raises(ConfigError, match="CONFIGPROXY_AUTH_TOKEN"):
        parse(["--pool_size=3"], {})


def test_a_proxy_on_another_host_may_use_the_same_port_number():
    config = parse(["--port=8000", "--proxy_public_url=http://proxy.example:8000"], ENV)
    assert config.port == 8000


@pytest.mark.parametrize("name", ["API_AUTH_TOKEN", "ADMIN_AUTH_TOKEN"])
def test_a_short_secret_is_refused_without_showing_it(name):
    with pytest.raises(ConfigError) as refused:
        parse([], {**ENV, name: "guessable"})
    assert str(refused.value) == f"{name}: must be empty or at least 32 characters"
    assert parse([], {**ENV, name: ""}).api_token is None


def test_the_config_derives_each_value_once():
    config = parse(
        [
            "--host_directories=/data:/home/jovyan/data:ro",
            "--extra_hosts=db:10.0.0.2",
            "--mem_limit=1g",
            "--disk_limit=0",
            "--keep_hours=2",
            "--keep_max_mb=10",
            "--schedule=2026-12-01T09:00+01:00/2026-12-01T12:00+01:00=5",
        ],
        ENV,
    )
    assert config.binds == {"/data": {"bind": "/home/jovyan/data", "mode": "ro"}}
    assert config.extra_host_map == {"db": "10.0.0.2"}
    assert (config.mem_limit_bytes, config.disk_limit_bytes) == (1024**3, 0)
    assert (config.keep_seconds, config.keep_max_bytes) == (7200, 10 * 1024**2)
    assert [booking.capacity for booking in config.bookings] == [5]
    assert config.bookings[0].start == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert config.command_template.words == tuple(DEFAULT_COMMAND.split())
    assert config.effective_pool_name == "tmpnb"


def test_check_config_prints_one_line_and_values_leaves_the_files_out(tmp_path, capsys):
    path = tmp_path / "orchestrator.toml"
    path.write_text('pool_size = 3\nlogo = "/on/the/server/logo.png"\n')
    assert check_main(["--check_config=values", f"--config={path}"], {}) == 0
    assert capsys.readouterr().out == "tmpnb-orchestrator: configuration is valid\n"
    assert check_main(["--check_config", f"--config={path}"], {}) == 2
    assert capsys.readouterr().err.startswith("tmpnb-orchestrator: --logo: got ")
    path.write_text("pool_size = 0\n")
    assert check_main(["--check-config=values", f"--config={path}"], {}) == 2
    error = capsys.readouterr().err
    assert error.startswith("tmpnb-orchestrator: --pool_size: got 0") and error.count("\n") == 1
    assert check_main(["--check_config=later"], {}) == 2
