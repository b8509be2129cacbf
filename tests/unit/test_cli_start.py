"""What every CLI command pays at start: modules only some commands need are not imported."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ONLY_WHEN_USED = [
    "grafana_client",  # tracker grafana-users / dashboards push
    "niquests",  # the Grafana client's HTTP library
    "jinja2",  # tracker report
    "cryptography",  # tracker audit (the signature library; writers load it when they sign)
]


@pytest.fixture(scope="module")
def loaded() -> set[str]:
    """The top-level modules a fresh interpreter holds after importing the CLI."""
    probe = "import json, sys, tracker.cli; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("module", ONLY_WHEN_USED)
def test_starting_the_cli_does_not_import(module: str, loaded: set[str]) -> None:
    assert module not in loaded
