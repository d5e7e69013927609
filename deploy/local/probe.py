"""Stdlib-only probes for deploy/local scripts (no venv packages needed).

    probe.py port-free PORT [PORT...]        exit 0 if every port can be bound on 127.0.0.1
    probe.py kafka HOST PORT                 exit 0 if a Kafka Metadata request lists a broker
    probe.py cassandra HOST PORT             exit 0 if CQL `SELECT release_version FROM
                                             system.local` answers; prints the version
    probe.py kafka-cluster-id                prints a new random Kafka cluster id

Each probe makes one attempt with a short timeout; the shell scripts do the polling.
"""

from __future__ import annotations

import base64
import socket
import struct
import sys
import uuid
from typing import Any

TIMEOUT_S = 3.0


class ProbeError(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("connection closed by server")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def raw(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def string16(self) -> str | None:
        n = self.take(">h")
        return None if n < 0 else self.raw(n).decode("utf-8")


# --------------------------------------------------------------------------- ports
def port_free(ports: list[int]) -> int:
    busy = []
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Java servers bind with SO_REUSEADDR too, so TIME_WAIT leftovers don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            busy.append(port)
        finally:
            s.close()
    if busy:
        print(" ".join(str(p) for p in busy))
        return 1
    return 0


# --------------------------------------------------------------------------- kafka
API_VERSIONS, METADATA = 18, 3


def _kafka_call(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> _Reader:
    client_id = b"interest-stream-probe"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    r = _Reader(_recv_exact(sock, size))
    if r.take(">i") != corr:
        raise ProbeError("kafka: correlation id mismatch")
    return r


def kafka_ready(host: str, port: int) -> int:
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.settimeout(TIMEOUT_S)
        r = _kafka_call(sock, API_VERSIONS, 0, 1, b"")
        err = r.take(">h")
        if err:
            raise ProbeError(f"kafka: ApiVersions error {err}")
        ranges = {}
        for _ in range(r.take(">i")):
            key, lo, hi = r.take(">hhh")
            ranges[key] = (lo, hi)
        lo, hi = ranges.get(METADATA, (0, -1))
        if not lo <= 4 <= hi:
            raise ProbeError(f"kafka: Metadata v4 not supported (broker has v{lo}..v{hi})")
        # Metadata v4: topics = [] (none), allow_auto_topic_creation = false
        r = _kafka_call(sock, METADATA, 4, 2, struct.pack(">ib", 0, 0))
        r.take(">i")  # throttle_time_ms
        brokers = []
        for _ in range(r.take(">i")):
            node_id = r.take(">i")
            bhost = r.string16()
            bport = r.take(">i")
            r.string16()  # rack
            brokers.append(f"{node_id}@{bhost}:{bport}")
        cluster_id = r.string16()
        controller = r.take(">i")
    if not brokers or controller < 0:
        raise ProbeError(f"kafka: not ready (brokers={brokers}, controller={controller})")
    print(f"cluster {cluster_id}, brokers {','.join(brokers)}")
    return 0


def kafka_cluster_id() -> int:
    # Kafka's Uuid: 16 random bytes, url-safe base64 without padding, never starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            print(cid)
            return 0


# ----------------------------------------------------------------------- cassandra
CQL_V4 = 0x04
OP_ERROR, OP_STARTUP, OP_READY, OP_QUERY, OP_RESULT = 0x00, 0x01, 0x02, 0x07, 0x08


def _cql_call(sock: socket.socket, stream: int, opcode: int, body: bytes) -> tuple[int, _Reader]:
    sock.sendall(struct.pack(">BBhBi", CQL_V4, 0, stream, opcode, len(body)) + body)
    version, _flags, rstream, ropcode, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    body_in = _recv_exact(sock, length)
    if version & 0x7F != CQL_V4 or rstream != stream:
        raise ProbeError(f"cassandra: unexpected frame (version {version:#x}, stream {rstream})")
    r = _Reader(body_in)
    if ropcode == OP_ERROR:
        code = r.take(">i")
        raise ProbeError(f"cassandra: error {code:#06x}: {r.string16()}")
    return ropcode, r


def _skip_type(r: _Reader) -> None:
    tid = r.take(">H")
    if tid == 0x0000:  # custom
        r.string16()
    elif tid in (0x0020, 0x0022):  # list, set
        _skip_type(r)
    elif tid == 0x0021:  # map
        _skip_type(r)
        _skip_type(r)
    elif tid == 0x0030:  # udt
        r.string16()
        r.string16()
        for _ in range(r.take(">H")):
            r.string16()
            _skip_type(r)
    elif tid == 0x0031:  # tuple
        for _ in range(r.take(">H")):
            _skip_type(r)


def cassandra_ready(host: str, port: int) -> int:
    def s16(s: str) -> bytes:
        b = s.encode()
        return struct.pack(">H", len(b)) + b

    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.settimeout(TIMEOUT_S)
        op, _ = _cql_call(
            sock, 1, OP_STARTUP, struct.pack(">H", 1) + s16("CQL_VERSION") + s16("3.0.0")
        )
        if op != OP_READY:
            raise ProbeError(f"cassandra: STARTUP answered opcode {op:#x} (authentication on?)")
        q = b"SELECT release_version FROM system.local"
        op, r = _cql_call(
            sock, 2, OP_QUERY, struct.pack(">i", len(q)) + q + struct.pack(">HB", 0x0001, 0)
        )
        if op != OP_RESULT or r.take(">i") != 0x0002:
            raise ProbeError("cassandra: query did not return rows")
        flags, ncols = r.take(">ii")
        if flags & 0x0002:  # has_more_pages
            r.raw(max(r.take(">i"), 0))
        if not flags & 0x0004:  # metadata present
            if flags & 0x0001:  # global table spec
                r.string16()
                r.string16()
            for _ in range(ncols):
                if not flags & 0x0001:
                    r.string16()
                    r.string16()
                r.string16()
                _skip_type(r)
        if r.take(">i") < 1:
            raise ProbeError("cassandra: system.local is empty")
        n = r.take(">i")
        version = r.raw(n).decode() if n >= 0 else "?"
    print(version)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "port-free":
            return port_free([int(a) for a in args])
        if cmd == "kafka":
            return kafka_ready(args[0], int(args[1]))
        if cmd == "cassandra":
            return cassandra_ready(args[0], int(args[1]))
        if cmd == "kafka-cluster-id":
            return kafka_cluster_id()
    except (OSError, ProbeError, struct.error, IndexError) as exc:
        print(f"{cmd}: {exc}", file=sys.stderr)
        return 1
    print(f"unknown probe {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
