"""The exported JSON Schema matches the models; the engine is pure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from schemas.__main__ import SCHEMA_FILE, render

ROOT = Path(__file__).resolve().parents[2]


def test_exported_json_schema_matches_the_models() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "schemas/event.schema.json is stale: run `python -m schemas` and review the diff"
    )


def test_json_schema_lists_every_event_type() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    mapping = schema["discriminator"]["mapping"]
    assert len(mapping) == 13 and "clock.tick" in mapping and "event.retracted" in mapping


def test_engine_imports_neither_kafka_nor_clickhouse_nor_third_party_code() -> None:
    probe = (
        "import sys, engine, engine.core, engine.status, engine.step, engine.warnings;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'aiokafka','kafka','faust','clickhouse_connect','chdb','mode','yaml','chinese_calendar'});"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); {probe}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == ""


def test_engine_sources_import_only_stdlib_engine_and_schemas() -> None:
    allowed = set(sys.stdlib_module_names) | {"engine", "schemas", "__future__"}
    for path in (ROOT / "engine").glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if line.startswith(("import ", "from ")) and len(words) > 1:
                top = words[1].split(".")[0]
                assert top in allowed, f"{path.name}: {line}"
