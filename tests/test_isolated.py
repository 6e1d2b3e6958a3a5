"""The module runner of tests/isolated.py: a marked module's tests really run in a child interpreter, each test
reports its own outcome from there, and a crash is a failure of the test it happened in (its signal named) and of
the tests it kept from running, not a dead pytest worker."""

from __future__ import annotations

from tests.isolated import describe_exit, run_module, verdict

MODULE = '''
import os, resource, signal
import pytest

def test_passes():
    assert 1 + 1 == 2

def test_fails():
    assert 2 + 2 == 5, "arithmetic"

def test_skips():
    pytest.skip("no GPU here")

@pytest.mark.slow
def test_slow():
    pass

def test_crashes():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
    os.kill(os.getpid(), signal.SIGSEGV)

def test_after_the_crash():
    pass
'''


def _node(name: str) -> str:
    return f"test_five.py::{name}"


def test_outcomes_of_a_module_run_in_a_child_and_a_crash_named(tmp_path) -> None:
    module = tmp_path / "test_five.py"
    module.write_text(MODULE)
    run = run_module(module, tmp_path / "record.jsonl", markexpr="not slow", timeout_s=120)
    assert describe_exit(run.returncode) == "killed by SIGSEGV"
    assert verdict(run, _node("test_passes")) == ("passed", "")
    outcome, text = verdict(run, _node("test_fails"))
    assert outcome == "failed" and "arithmetic" in text and "assert (2 + 2) == 5" in text
    assert verdict(run, _node("test_skips")) == ("skipped", "Skipped: no GPU here")
    outcome, text = verdict(run, _node("test_crashes"))
    assert outcome == "failed" and text.startswith("the child interpreter running this module died in this test "
                                                   "(killed by SIGSEGV)")
    outcome, text = verdict(run, _node("test_after_the_crash"))
    assert outcome == "failed" and text.startswith("not run: the child interpreter running this module died in "
                                                   "test_five.py::test_crashes (killed by SIGSEGV)")
    outcome, text = verdict(run, _node("test_slow"))  # deselected in the child as in the parent
    assert outcome == "failed" and text.startswith("not run")
    assert describe_exit(3) == "exit status 3"
