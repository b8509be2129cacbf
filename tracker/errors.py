"""What the user can fix: `UserError`, printed by `tracker` as one line `tracker: error: ...`
(exit 2), and the library errors that are the user's to fix, translated into it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from config.holidays import HolidayFileError
from config.key_file import KeyFileError
from config.registry import ConfigFileError
from config.rulebooks import RulebookError
from engine import ConfigError
from sinks import StoreError
from tracker.registry_guard import RegistryChangeError


class UserError(Exception):
    """Something the user can fix; printed as one line."""


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except (
        StoreError,
        ConfigFileError,
        RulebookError,
        HolidayFileError,
        ConfigError,
        RegistryChangeError,
        KeyFileError,
    ) as exc:
        raise UserError(str(exc)) from None
    except BrokenPipeError:
        raise  # the reader of our output went away (`tracker ledger | head`): not an error
    except OSError as exc:
        raise UserError(f"{exc.filename or ''}: {exc.strerror}".lstrip(": ")) from None
