"""Loading the transcribed rulebooks (one YAML file per id, shipped in `rulebooks/`).

The loader turns a broken rulebook into one clear message naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from config.yaml12 import safe_load
from rulebooks import RULEBOOK_DIR
from schemas.rulebook import Rulebook


class RulebookError(ValueError):
    """A rulebook file that cannot be used; the message is one line naming the file."""


def parse_rulebook(text: str, origin: str = "<rulebook>") -> Rulebook:
    try:
        data = safe_load(text)
    except ValueError as exc:
        raise RulebookError(f"{origin}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulebookError(f"{origin}: a rulebook must be a YAML mapping")
    try:
        return Rulebook.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RulebookError(f"{origin}: {loc}: {first['msg']}") from None


def load_rulebook(path: Path) -> Rulebook:
    book = parse_rulebook(path.read_text(encoding="utf-8"), origin=path.name)
    if book.id != path.stem:
        raise RulebookError(f"{path.name}: id {book.id!r} does not match the file name")
    return book


def load_rulebooks(directory: Path | None = None) -> Mapping[str, Rulebook]:
    """Every `*.yaml` rulebook of a directory (the shipped ones by default), by id."""
    folder = directory or RULEBOOK_DIR
    books = {}
    for path in sorted(folder.glob("*.yaml")):
        book = load_rulebook(path)
        books[book.id] = book
    return books
