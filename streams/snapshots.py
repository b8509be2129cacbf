"""Engine snapshots in a key-value table (a Faust table backed by a changelog topic).

A snapshot is the pickled partition state plus the input offset it covers. Kafka records are
limited to about 1 MB, so the compressed pickle is split into chunks under their own keys and a
manifest key lists the newest snapshots (two: a crash can leave the newest one ahead of the
committed input offset, and then the older one still qualifies). Chunks are written before the
manifest that names them, and dropped only after it no longer does, so every prefix of the
changelog holds usable snapshots; a checksum guards against anything else.

Snapshots come from this worker's own changelog topic and are unpickled: whoever can write to
the changelog topics can run code in the worker, as with any Faust table of Python objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import zlib
from collections.abc import MutableMapping
from typing import Any

log = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024
KEEP = 2


def save(
    table: MutableMapping[str, bytes], partition: int, offset: int, state: Any, config: str
) -> int:
    """Store `state` as covering input offsets up to `offset`; returns the compressed size."""
    blob = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
    chunks = max(1, -(-len(blob) // CHUNK_BYTES))
    for i in range(chunks):
        table[f"{partition}:{offset}:{i}"] = blob[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES]
    entry = {
        "offset": offset,
        "chunks": chunks,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "config": config,
    }
    old = manifest(table, partition)
    kept = [entry, *(m for m in old if m["offset"] != offset)][:KEEP]
    table[str(partition)] = json.dumps(kept).encode()
    for dropped in old:
        if dropped not in kept:
            for i in range(dropped["chunks"]):
                table.pop(f"{partition}:{dropped['offset']}:{i}", None)
    return len(blob)


def load(
    table: MutableMapping[str, bytes], partition: int, before: int, config: str
) -> tuple[int, Any] | None:
    """The newest usable snapshot covering less than `before`: (offset, state), or None."""
    for entry in manifest(table, partition):
        if entry["offset"] >= before or entry["config"] != config:
            continue
        parts = [table.get(f"{partition}:{entry['offset']}:{i}") for i in range(entry["chunks"])]
        blob = b"".join(p for p in parts if p is not None)
        if None in parts or hashlib.sha256(blob).hexdigest() != entry["sha256"]:
            log.warning("snapshot %s@%s is incomplete; trying an older one", partition, entry)
            continue
        return int(entry["offset"]), pickle.loads(zlib.decompress(blob))
    return None


def manifest(table: MutableMapping[str, bytes], partition: int) -> list[dict[str, Any]]:
    raw = table.get(str(partition))
    if not raw:
        return []
    try:
        found = json.loads(raw)
    except ValueError:
        return []
    return found if isinstance(found, list) else []
