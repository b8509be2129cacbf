"""The transcribed rulebooks, one YAML file per id: data only (loaded by `config.rulebooks`)."""

from __future__ import annotations

from pathlib import Path

RULEBOOK_DIR = Path(__file__).resolve().parent
