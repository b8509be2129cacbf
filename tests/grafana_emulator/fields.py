"""The field (column) names a panel refers to by name, which a query's result must carry: Grafana
matches overrides and transformations by display name and silently skips a name it does not find."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_LABEL = re.compile(r"\$\{__field\.labels\.(\w+)\}")


def referenced_fields(panel: Mapping[str, Any]) -> set[str]:
    """Field (column) names a panel's overrides, transformations and options refer to."""
    names: set[str] = set()
    config = panel.get("fieldConfig", {})
    for override in config.get("overrides", []):
        matcher = override.get("matcher", {})
        if matcher.get("id") == "byName":
            names.add(matcher["options"])
    names.update(_LABEL.findall(json.dumps(config.get("defaults", {}))))
    for step in panel.get("transformations", []):
        options = step.get("options", {})
        if step.get("id") == "organize":
            for key in ("excludeByName", "indexByName", "renameByName"):
                names.update(options.get(key, {}))
        elif step.get("id") == "rowsToFields":
            names.update(m["fieldName"] for m in options.get("mappings", []))
        elif step.get("id") == "sortBy":
            names.update(s["field"] for s in options.get("sort", []) if s.get("field"))
    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    if fields and not fields.startswith("/"):
        names.add(fields)
    elif fields.startswith("/^") and fields.endswith("$/"):
        names.add(fields[2:-2])
    return names
