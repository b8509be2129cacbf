"""Does a port speak Kafka? One raw ApiVersions v0 request over a socket, no Kafka client.

The local broker counts as started only once its port answers this (``streams/broker.py``), and
``streams/topics.py`` asks it to tell a broker that refused a login from one that is down, which
the client library reports alike. Stdlib only, like the broker module, so ``tracker kafka
start`` can ask it before any Kafka client is importable.
"""

from __future__ import annotations

import socket
import struct

_API_VERSIONS_KEY = 18


def api_versions_ok(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when host:port answers an ApiVersions v0 request without error, i.e. speaks Kafka."""
    client_id = b"tracker-probe"
    correlation_id = 0x7472
    body = struct.pack(">hhih", _API_VERSIONS_KEY, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            (size,) = struct.unpack(">i", _recv_exact(sock, 4))
            got_id, error_code = struct.unpack(">ih", _recv_exact(sock, min(size, 6)))
    except (OSError, struct.error):
        return False
    return bool(got_id == correlation_id and error_code == 0)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise OSError("connection closed mid-response")
        data += chunk
    return data
