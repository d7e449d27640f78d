"""The tests' shared helper, tests/support/nbtest.py: waiting, and reading a kernel's answer.

Unit tests: a fake clock-free condition and a fake websocket; the real kernel is exercised by every
suite that uses the helper (orchestrator integration, reliability, Molecule).
"""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "support"))
from nbtest import KernelChannels, KernelError, WaitTimeout, wait_for


def test_wait_for_returns_the_first_true_value_and_retries_transient_errors():
    answers = iter([ConnectionError("refused"), KeyError("available"), 0, {"available": 2}])

    def condition():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert wait_for(condition, 5, "the pool", interval=0) == {"available": 2}


def test_wait_for_names_what_it_waited_for_and_the_last_error():
    def refused():
        raise ConnectionRefusedError("nobody listens")

    with pytest.raises(WaitTimeout, match=r"after 0\.05s waiting for the proxy to answer") as err:
        wait_for(refused, 0.05, "the proxy to answer", interval=0.01)
    assert "nobody listens" in str(err.value)
    with pytest.raises(WaitTimeout, match="waiting for nothing"):
        wait_for(lambda: False, 0, "nothing")


def test_wait_for_stops_at_once_on_an_assert_unless_told_to_retry_it():
    calls = []

    def jumped():
        calls.append(1)
        raise AssertionError("the newcomer jumped the line")

    with pytest.raises(AssertionError, match="jumped the line"):
        wait_for(jumped, 5, "the waiter", interval=0)
    assert len(calls) == 1
    answers = iter([AssertionError("not yet"), True])

    def flaky():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    retry = (AssertionError,)
    assert wait_for(flaky, 5, "an assert to hold", interval=0, retry=retry) is True


class FakeConnection:
    """The kernel's side of the websocket: the messages it sends, in order."""

    def __init__(self, messages):
        self.messages = [json.dumps(message) for message in messages]

    def recv(self):
        return self.messages.pop(0)


def reply(msg_id, msg_type, content):
    return {"parent_header": {"msg_id": msg_id}, "msg_type": msg_type, "content": content}


def channels(messages):
    kernel = object.__new__(KernelChannels)
    kernel.kernel_id = "k"
    kernel.connection = FakeConnection(messages)
    return kernel


def test_an_execution_collects_its_own_outputs_until_the_kernel_is_idle():
    kernel = channels([
        reply("other", "stream", {"text": "someone else's\n"}),
        reply("m", "status", {"execution_state": "busy"}),
        reply("m", "stream", {"text": "/home/jovyan\n"}),
        reply("m", "display_data", {"data": {"text/plain": "<Figure>"}}),
        reply("m", "execute_result", {"data": {"text/plain": "20"}}),
        reply("m", "execute_reply", {"execution_count": 1}),
        reply("other", "status", {"execution_state": "idle"}),
        reply("m", "status", {"execution_state": "idle"}),
        reply("m", "stream", {"text": "never read"}),
    ])  # fmt: skip
    execution = kernel.collect("m", 5)
    assert execution.stdout == "/home/jovyan\n"
    assert execution.result == "20"
    assert execution.outputs == ["/home/jovyan\n", "<Figure>", "20"]
    assert (execution.error, execution.execution_count) == (None, 1)


def test_an_execution_waits_for_its_reply_when_the_idle_status_comes_first():
    # The reply travels on the shell channel, the status on iopub: their order is not fixed.
    # Before, the execution ended at the idle status without its execution count (a fresh
    # machine's Molecule run failed on it).
    kernel = channels([
        reply("m", "status", {"execution_state": "busy"}),
        reply("m", "execute_result", {"data": {"text/plain": "20"}}),
        reply("m", "status", {"execution_state": "idle"}),
        reply("m", "execute_reply", {"execution_count": 1}),
    ])  # fmt: skip
    execution = kernel.collect("m", 5)
    assert (execution.result, execution.execution_count) == ("20", 1)


def test_kernel_info_is_done_once_answered_and_idle():
    kernel = channels([
        reply("i", "kernel_info_reply", {"status": "ok"}),
        reply("i", "status", {"execution_state": "idle"}),
        reply("i", "stream", {"text": "never read"}),
    ])  # fmt: skip
    assert kernel.collect("i", 5).outputs == []


def test_an_error_in_the_kernel_is_reported():
    kernel = channels([
        reply("m", "error", {"ename": "ZeroDivisionError", "evalue": "division by zero"}),
        reply("m", "execute_reply", {"status": "error", "execution_count": 3}),
        reply("m", "status", {"execution_state": "idle"}),
    ])  # fmt: skip
    execution = kernel.collect("m", 5)
    assert execution.error == "ZeroDivisionError: division by zero"
    assert execution.outputs == ["ZeroDivisionError: division by zero"]
    with pytest.raises(KernelError, match="did not finish within 0s"):
        channels([reply("m", "status", {"execution_state": "busy"})]).collect("m", 0)
