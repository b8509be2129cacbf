"""A test tool: Grafana's and the ClickHouse data source plugin's expansion of panel SQL, so the
shipped dashboards' queries run on chDB in tests/integration/test_dashboards.py.

Not part of the installed package: nothing under tracker/, streams/, sinks/, engine/ or schemas/
imports it. It mirrors one plugin release, `PLUGIN_VERSION`, the one docker-compose.yml installs
(tests/unit/test_grafana_emulator.py fails when the two differ); docs/dashboards.md says how to
move it to another release.
"""

from __future__ import annotations

from tests.grafana_emulator.fields import referenced_fields
from tests.grafana_emulator.macros import ExpandError, TimeRange, interpolate_macros
from tests.grafana_emulator.sql import (
    ALL,
    Variable,
    apply_conditional_all,
    expand,
    replace_variables,
)
from tests.grafana_emulator.variables import resolve_variables

PLUGIN = "grafana-clickhouse-datasource"
# The release mirrored, and the grafana-plugin-sdk-go its backend is built with (its go.mod at the
# plugin's tag): the sdk's sqlutil.Interpolate applies the macros and supplies the defaults.
PLUGIN_VERSION = "4.11.2"
PLUGIN_SDK_VERSION = "0.280.0"

__all__ = [
    "ALL",
    "PLUGIN",
    "PLUGIN_SDK_VERSION",
    "PLUGIN_VERSION",
    "ExpandError",
    "TimeRange",
    "Variable",
    "apply_conditional_all",
    "expand",
    "interpolate_macros",
    "referenced_fields",
    "replace_variables",
    "resolve_variables",
]
