"""The package-wide settings: data root and the book's budget switch."""
import subprocess
import sys

import pytest


@pytest.mark.parametrize("value,fast", [("1", True), ("yes", True), ("0", False), ("", False), ("false", False)])
def test_fast_switch_is_read_once_from_the_environment(value, fast):
    code = "import sketchode.book.budget as c; print(c.FAST, c.budget('small', 'full'))"
    env = {"SKETCHODE_FAST": value, "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()
    assert out == [str(fast), "small" if fast else "full"]


def test_test_suite_runs_under_the_small_budget():
    import os

    import sketchode.book.budget as c

    assert os.environ.get("SKETCHODE_FAST") == "1" and c.FAST
