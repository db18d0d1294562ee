"""Lint and strict typing are part of the test suite, so the README's one test command checks them."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_finds_no_lint_and_no_unformatted_code() -> None:
    for args in (["check", "."], ["format", "--check", "swarm", "tools", "scripts", "tests"]):
        proc = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=REPO, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_library_type_checks_under_mypy_strict() -> None:
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
