"""`python -m schemas` rewrites schemas/event.schema.json from the models (a test checks it)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.events import event_json_schema

SCHEMA_FILE = Path(__file__).resolve().parent / "event.schema.json"


def render() -> str:
    return json.dumps(event_json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
