"""Module-level values of engine/ have the types mypy infers for them. The interpreter does not
care, but a build compiled with mypyc checks a value against its inferred type when the module
is imported, and refuses to import at all on a mismatch (bench/engine_mypyc_probe.py)."""

from __future__ import annotations

from engine import core
from engine.notices import REF_FIELD
from engine.validation import FOLLOW_UPS
from schemas.events import EVENT_TYPES


def test_findings_is_the_frozenset_mypy_infers() -> None:
    # `frozenset - dict_keys` is a plain set at run time (dict_keys' own `__rsub__` answers),
    # though typeshed says frozenset: the compiled build raised TypeError at import
    assert type(core._FINDINGS) is frozenset
    expected = set(EVENT_TYPES) - set(REF_FIELD) - set(FOLLOW_UPS) - {"clock.tick"}
    assert expected == core._FINDINGS
