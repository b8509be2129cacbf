"""YAML as every input file of the tracker is read: safely, with YAML 1.2 booleans."""

from __future__ import annotations

import re

import yaml


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so a key such as `on:` stays the string "on"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def safe_load(text: str) -> object:
    """Parse YAML safely with YAML 1.2 booleans; a syntax error becomes a ValueError."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
