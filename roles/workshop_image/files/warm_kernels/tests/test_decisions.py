"""The warm pool's pure decisions; the extension in a real server is tested in the image (Molecule
scenario of roles/workshop_image)."""

import ast
import os
import pathlib
import types

import pytest
from tmpnb_warm_kernels import decisions

SERVER_ENV = {"HOME": "/home/jovyan", "PATH": "/opt/notebook/bin:/usr/bin", "LANG": "C.UTF-8"}
NOTEBOOK = "/home/jovyan/workshop/python.ipynb"


def start(**overrides):
    """refusal()'s arguments for the start the browser makes: a session's, with the server's env."""
    arguments = {
        "kernel_name": "python3",
        "kernel_id": None,
        "state": decisions.READY,
        "arguments": ["kernel_name", "env"],
        "env": {**SERVER_ENV, decisions.SESSION_VARIABLE: NOTEBOOK},
        "warm_env": dict(SERVER_ENV),
    }
    arguments.update(overrides)
    return decisions.refusal(**arguments)


def test_a_sessions_start_takes_the_warm_kernel():
    assert start() is None


def test_a_start_of_the_kernels_api_without_env_takes_it():
    assert start(arguments=["kernel_name"], env=None) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"state": None}, "python3 is not kept warm"),
        ({"state": decisions.STARTING}, "the warm python3 kernel is starting"),
        ({"state": decisions.WAITING}, "the warm python3 kernel is waiting"),
        ({"state": decisions.FAILED}, "the warm python3 kernel is failed"),
        ({"kernel_id": "a-chosen-id"}, "the client chose the kernel's id"),
        ({"arguments": ["kernel_name", "extra_arguments"]}, "the start asks for extra_arguments"),
        ({"env": {**SERVER_ENV, "MY_VAR": "1"}}, "the start asks for an environment of its own"),
        ({"env": {"HOME": "/home/jovyan"}}, "the start asks for an environment of its own"),
        ({"env": SERVER_ENV, "warm_env": None}, "the start asks for an environment of its own"),
    ],
)
def test_any_doubt_gives_an_ordinary_start(overrides, reason):
    assert start(**overrides) == reason


def test_the_notebooks_name_alone_is_no_environment_of_its_own():
    assert start(env={**SERVER_ENV, decisions.SESSION_VARIABLE: "/elsewhere/x.ipynb"}) is None
    assert start(env=dict(SERVER_ENV)) is None


@pytest.mark.parametrize(
    ("language", "argv", "warmable"),
    [
        ("python", ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], True),
        (
            "Python",
            ["/opt/notebook/bin/python", "-m", "ipykernel", "-f", "{connection_file}"],
            True,
        ),
        ("python", ["python", "-m", "xeus_python", "-f", "{connection_file}"], False),
        ("R", ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"], False),
        ("octave", ["python", "-m", "octave_kernel", "-f", "{connection_file}"], False),
    ],
)
def test_only_ipykernel_is_kept_warm(language, argv, warmable):
    assert decisions.is_warmable(language, argv) is warmable


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("numpy", True),
        ("matplotlib.pyplot", True),
        ("_private.mod2", True),
        ("", False),
        ("numpy; import os", False),
        ("os.system('x')", False),
        ("a..b", False),
        ("1abc", False),
    ],
)
def test_module_names(name, valid):
    assert decisions.is_module_name(name) is valid


def _run(code, namespace):
    """Run the code as IPython would, with a stand-in get_ipython(), and return the namespace."""

    shell = types.SimpleNamespace(
        history_manager=types.SimpleNamespace(dir_hist=[pathlib.Path("/home/jovyan")]),
        starting_dir="/home/jovyan",
        user_ns=namespace,
    )
    namespace["get_ipython"] = lambda: shell
    exec(compile(code, "<handout>", "exec"), namespace)  # noqa: S102 - code under test, fixed input
    return shell


@pytest.fixture
def kernel_process(tmp_path, monkeypatch):
    """The handout code changes the working directory and environment: keep them for the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(decisions.SESSION_VARIABLE, raising=False)
    return tmp_path


def test_handout_code_sets_what_an_ordinary_start_sets(kernel_process):
    folder = kernel_process / "work shop's"
    folder.mkdir()
    notebook = str(folder / 'it\'s "x".ipynb')
    namespace = {}
    shell = _run(decisions.handout_code(cwd=str(folder), session_name=notebook), namespace)
    assert os.getcwd() == str(folder)
    assert os.environ[decisions.SESSION_VARIABLE] == notebook
    assert namespace["__session__"] == notebook
    assert shell.history_manager.dir_hist == [folder]
    assert shell.starting_dir == str(folder)
    # Nothing else is bound in the visitor's namespace.
    assert set(namespace) - {"__builtins__", "get_ipython"} == {"__session__"}


def test_handout_code_without_a_notebook_leaves_no_session(kernel_process, monkeypatch):
    monkeypatch.setenv(decisions.SESSION_VARIABLE, "/stale.ipynb")
    namespace = {"__session__": "/stale.ipynb"}
    _run(decisions.handout_code(cwd=str(kernel_process), session_name=None), namespace)
    assert decisions.SESSION_VARIABLE not in os.environ
    assert "__session__" not in namespace


def test_an_empty_session_name_is_set_but_binds_no_session(kernel_process):
    # ipykernel binds __session__ only for a non-empty JPY_SESSION_NAME.
    namespace = {}
    _run(decisions.handout_code(cwd=str(kernel_process), session_name=""), namespace)
    assert os.environ[decisions.SESSION_VARIABLE] == ""
    assert "__session__" not in namespace


def test_warm_imports_bind_no_name_and_survive_a_missing_module():
    modules = ["json", "tmpnb_no_such_module", "email.mime.text"]
    namespace = {}
    exec(decisions.warm_import_code(modules), namespace)  # noqa: S102 - fixed input
    assert set(namespace) == {"__builtins__"}
    missing = eval(decisions.missing_imports_expression(modules), namespace)  # noqa: S307
    assert missing == ["tmpnb_no_such_module"]
    assert set(namespace) == {"__builtins__"}
    # What the manager reads back from the kernel's user_expressions reply.
    assert ast.literal_eval(repr(missing)) == missing


def test_warm_imports_refuse_what_is_not_a_module_name():
    with pytest.raises(ValueError, match="not a module name"):
        decisions.warm_import_code(["numpy", "os; os.remove('x')"])


def test_a_restart_uses_the_visitors_start():
    warm = {"cwd": "/home/jovyan", "env": {"A": "1"}, "transport_encryption": "disabled"}
    visitor_env = {"A": "1", decisions.SESSION_VARIABLE: NOTEBOOK}
    args = decisions.visitor_launch_args(warm, cwd="/home/jovyan/workshop", env=visitor_env)
    assert args == {
        "cwd": "/home/jovyan/workshop",
        "env": visitor_env,
        "transport_encryption": "disabled",
    }
    assert args["env"] is not visitor_env  # update_env after a rename must not change the caller's
    # A start without path or env (POST /api/kernels) launches without either, as an ordinary one.
    assert decisions.visitor_launch_args(warm, cwd=None, env=None) == {
        "transport_encryption": "disabled"
    }


def test_readiness():
    assert decisions.readiness({}) == {"ready": True, "kernels": {}, "page": "warm"}
    ready = {"state": decisions.READY, "handed_out": 0}
    assert decisions.readiness({"python3": ready})["ready"] is True
    answer = decisions.readiness({"python3": ready, "other": {"state": decisions.STARTING}})
    assert answer["ready"] is False
    assert list(answer["kernels"]) == ["other", "python3"]


def test_not_ready_while_the_first_page_warms():
    ready = {"state": decisions.READY, "handed_out": 0}
    assert decisions.readiness({"python3": ready}, "warming") == {
        "ready": False,
        "kernels": {"python3": ready},
        "page": "warming",
    }
    assert decisions.readiness({}, "warming")["ready"] is False
    assert decisions.readiness({"python3": ready}, "warm")["ready"] is True


def test_retry_delay_doubles_up_to_a_cap():
    assert [decisions.retry_delay(n) for n in (1, 2, 3, 4, 7, 20)] == [1, 2, 4, 8, 60, 60]
