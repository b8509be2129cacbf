"""What the user can fix: `UserError`, printed by `tracker` as one line `tracker: error: ...`
(exit 2), and the library errors that are the user's to fix, translated into it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

# (module, class) of the library errors that are the user's to fix. Looked up in sys.modules
# when something is raised, not imported here: a module that was never loaded raised nothing,
# and importing them all would cost every command's start the engine and the config loaders.
_FIXABLE = (
    ("sinks.errors", "StoreError"),
    ("config.registry", "ConfigFileError"),
    ("config.rulebooks", "RulebookError"),
    ("config.holidays", "HolidayFileError"),
    ("engine", "ConfigError"),
    ("tracker.registry_guard", "RegistryChangeError"),
    ("config.key_file", "KeyFileError"),
)


class UserError(Exception):
    """Something the user can fix; printed as one line."""


def fixable(exc: BaseException) -> bool:
    """Whether `exc` is one of the library errors that are the user's to fix."""
    for module, name in _FIXABLE:
        loaded = sys.modules.get(module)
        kind = getattr(loaded, name, None) if loaded is not None else None
        if kind is not None and isinstance(exc, kind):
            return True
    return False


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except BrokenPipeError:
        raise  # the reader of our output went away (`tracker ledger | head`): not an error
    except Exception as exc:
        if fixable(exc):
            raise UserError(str(exc)) from None
        if isinstance(exc, OSError):
            raise UserError(f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")) from None
        raise
