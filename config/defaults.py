"""Default values the settings and the CLI's help texts share, without importing pydantic (the
CLI's help texts are built at every start: tests/unit/test_cli_start.py)."""

from __future__ import annotations

DEFAULT_KAFKA = "127.0.0.1:9092"
