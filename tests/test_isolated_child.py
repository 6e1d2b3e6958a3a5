"""A module marked ``isolated``: its tests run in the child interpreter only (see tests/test_isolated.py)."""

from __future__ import annotations

import os

import pytest

from tests.isolated import CHILD_ENV, in_child

pytestmark = pytest.mark.isolated


def test_the_body_runs_in_the_child_interpreter() -> None:
    assert in_child() and os.environ[CHILD_ENV].endswith(".record.jsonl")


def test_the_child_is_no_xdist_worker() -> None:
    assert "PYTEST_XDIST_WORKER" not in os.environ
