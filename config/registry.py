"""Loading a unit registry (YAML, contract section 3); the Fujian demo registry ships here."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from config.yaml12 import safe_load
from schemas.registry import Registry

DEMO_REGISTRY = Path(__file__).resolve().parent / "data" / "units-fujian.yaml"


class ConfigFileError(ValueError):
    pass


def load_registry(path: Path) -> Registry:
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(f"cannot read unit registry {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigFileError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Registry.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        where = f"{loc}: " if loc else ""
        raise ConfigFileError(f"{path}: {where}{first['msg']}") from None
