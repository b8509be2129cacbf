"""Loading the unit registry and choosing the store."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError

from rulebooks import safe_load
from schemas.registry import Registry

DATA_DIR_ENV = "TRACKER_DATA"
STORE_ENV = "TRACKER_STORE"
DEMO_REGISTRY = Path(__file__).resolve().parent / "data" / "units-fujian.yaml"


class ConfigFileError(ValueError):
    pass


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, ".data")).resolve()


def default_store() -> str:
    """The embedded chDB store in the data directory, unless TRACKER_STORE says otherwise."""
    return os.environ.get(STORE_ENV) or f"chdb://{data_dir() / 'chdb'}"


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
