"""The fresh-interpreter runner of tests/isolated.py: the body really runs in a child, and a crash there is one
failure that names its signal."""

from __future__ import annotations

import os

from tests.isolated import (
    ENV,
    current_node_id,
    describe_exit,
    in_fresh_interpreter,
    run_node,
)


@in_fresh_interpreter
def test_the_body_runs_in_a_child_interpreter() -> None:
    assert os.environ.get(ENV) == current_node_id()  # set only for the child pytest


def test_a_crash_in_the_child_is_one_failure_naming_the_signal(tmp_path) -> None:
    crashing = tmp_path / "test_crash.py"
    crashing.write_text("import os, resource, signal\n\ndef test_crash():\n"
                        "    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file in the repository\n"
                        "    os.kill(os.getpid(), signal.SIGSEGV)\n")
    done = run_node(f"{crashing}::test_crash", timeout_s=120)
    assert describe_exit(done.returncode) == "killed by SIGSEGV"
    assert describe_exit(3) == "exit status 3"
