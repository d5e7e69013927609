"""Stdlib-only probes and tiny clients for the deploy/local scripts (no venv packages needed).

    probe.py port-free [HOST:]PORT...          exit 0 if every port can be bound (HOST
                                               default 127.0.0.1); else print the busy ones
    probe.py kafka HOST PORT [--brokers N]     exit 0 if a Kafka Metadata request lists a
                                               broker (at least N) and a controller
    probe.py cassandra HOST PORT [--peers N]   exit 0 if CQL `SELECT release_version FROM
                                               system.local` answers (and system.peers has N
                                               rows); prints the version
    probe.py kafka-acls HOST PORT              create the ACLs read from stdin, one a line:
                                               PRINCIPAL TOPIC|GROUP|CLUSTER NAME OPERATION
    probe.py cql HOST PORT                     run the CQL statements read from stdin, one a
                                               line; print the rows of results, tab-separated
    probe.py kafka-cluster-id                  prints a new random Kafka cluster id

Options of the server commands, for the secure servers:
    --cafile CA.pem     TLS, the server's certificate verified against this CA
    --user NAME         SASL/SCRAM-SHA-512 (Kafka) or password authentication (Cassandra);
                        the password is read from the environment variable PROBE_PASSWORD
                        (or the one --password-env names), never from the command line
    --auth-required     (cassandra) exit 0 as soon as the server asks for authentication:
                        it is up, its roles may not exist yet

Each probe makes one attempt with a short timeout; the shell scripts do the polling.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import socket
import ssl
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

    def bytes32(self) -> bytes | None:
        n = self.take(">i")
        return None if n < 0 else self.raw(n)


def _s16(text: str) -> bytes:
    b = text.encode()
    return struct.pack(">h", len(b)) + b


def _b32(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _connect(host: str, port: int, cafile: str | None) -> socket.socket:
    """A TCP connection, wrapped in TLS (certificate and host name verified) with a CA."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT_S)
    sock.settimeout(TIMEOUT_S)
    if cafile is None:
        return sock
    context = ssl.create_default_context(cafile=cafile)
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except (ssl.SSLError, OSError):
        sock.close()
        raise


def _password(args: argparse.Namespace) -> str:
    value = os.environ.get(args.password_env)
    if value is None:
        raise ProbeError(f"--user {args.user} needs the password in ${args.password_env}")
    return value


# --------------------------------------------------------------------------- ports
def port_free(items: list[str]) -> int:
    busy = []
    for item in items:
        host, _, port = item.rpartition(":")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Java servers bind with SO_REUSEADDR too, so TIME_WAIT leftovers don't count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host or "127.0.0.1", int(port)))
        except OSError:
            busy.append(item)
        finally:
            s.close()
    if busy:
        print(" ".join(busy))
        return 1
    return 0


# --------------------------------------------------------------------------- kafka
API_VERSIONS, METADATA, SASL_HANDSHAKE, SASL_AUTHENTICATE, CREATE_ACLS = 18, 3, 17, 36, 30


class _Kafka:
    """One connection speaking the non-flexible (v0-style header) request versions."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.corr = 0
        self.ranges: dict[int, tuple[int, int]] = {}

    def call(self, api_key: int, version: int, body: bytes) -> _Reader:
        self.corr += 1
        client_id = b"interest-stream-probe"
        header = struct.pack(">hhih", api_key, version, self.corr, len(client_id)) + client_id
        msg = header + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", _recv_exact(self.sock, 4))[0]
        r = _Reader(_recv_exact(self.sock, size))
        if r.take(">i") != self.corr:
            raise ProbeError("kafka: correlation id mismatch")
        return r

    def api_versions(self) -> dict[int, tuple[int, int]]:
        r = self.call(API_VERSIONS, 0, b"")
        err = r.take(">h")
        if err:
            raise ProbeError(f"kafka: ApiVersions error {err}")
        ranges = {}
        for _ in range(r.take(">i")):
            key, lo, hi = r.take(">hhh")
            ranges[key] = (lo, hi)
        self.ranges = ranges
        return ranges

    def scram_login(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512") -> None:
        """SaslHandshake v1 + SaslAuthenticate v1 rounds of RFC 5802 (SCRAM, no channel binding)."""
        r = self.call(SASL_HANDSHAKE, 1, _s16(mechanism))
        err = r.take(">h")
        if err:
            offered = [r.string16() for _ in range(r.take(">i"))]
            raise ProbeError(f"kafka: {mechanism} not enabled (server offers {offered})")
        digest = {"SCRAM-SHA-512": hashlib.sha512, "SCRAM-SHA-256": hashlib.sha256}[mechanism]
        name = user.replace("=", "=3D").replace(",", "=2C")
        nonce = base64.b64encode(secrets.token_bytes(24)).decode()
        first_bare = f"n={name},r={nonce}"
        server_first = self._sasl_round(f"n,,{first_bare}".encode()).decode()
        fields = dict(item.split("=", 1) for item in server_first.split(","))
        if not fields.get("r", "").startswith(nonce):
            raise ProbeError("kafka: SCRAM server nonce does not extend ours")
        salted = hashlib.pbkdf2_hmac(
            digest().name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
        )
        client_key = hmac.new(salted, b"Client Key", digest).digest()
        without_proof = f"c=biws,r={fields['r']}"
        auth_message = f"{first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(digest(client_key).digest(), auth_message, digest).digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
        server_final = self._sasl_round(f"{without_proof},p={proof.decode()}".encode()).decode()
        server_key = hmac.new(salted, b"Server Key", digest).digest()
        expected = base64.b64encode(hmac.new(server_key, auth_message, digest).digest()).decode()
        if server_final != f"v={expected}":
            raise ProbeError("kafka: the server's SCRAM signature does not verify")

    def _sasl_round(self, token: bytes) -> bytes:
        r = self.call(SASL_AUTHENTICATE, 1, _b32(token))
        err, message = r.take(">h"), r.string16()
        if err:
            raise ProbeError(f"kafka: authentication failed (error {err}: {message})")
        return r.bytes32() or b""


def _kafka_session(args: argparse.Namespace) -> _Kafka:
    kafka = _Kafka(_connect(args.host, args.port, args.cafile))
    kafka.api_versions()
    if args.user:
        kafka.scram_login(args.user, _password(args), args.mechanism)
    return kafka


def kafka_ready(args: argparse.Namespace) -> int:
    kafka = _kafka_session(args)
    with kafka.sock:
        lo, hi = kafka.ranges.get(METADATA, (0, -1))
        if not lo <= 4 <= hi:
            raise ProbeError(f"kafka: Metadata v4 not supported (broker has v{lo}..v{hi})")
        # Metadata v4: topics = [] (none), allow_auto_topic_creation = false
        r = kafka.call(METADATA, 4, struct.pack(">ib", 0, 0))
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
    if len(brokers) < max(args.brokers, 1) or controller < 0:
        raise ProbeError(f"kafka: not ready (brokers={brokers}, controller={controller})")
    print(f"cluster {cluster_id}, brokers {','.join(sorted(brokers))}")
    return 0


ACL_RESOURCES = {"TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
ACL_OPERATIONS = {
    "ALL": 2,
    "READ": 3,
    "WRITE": 4,
    "CREATE": 5,
    "DELETE": 6,
    "ALTER": 7,
    "DESCRIBE": 8,
    "CLUSTER_ACTION": 9,
    "DESCRIBE_CONFIGS": 10,
    "ALTER_CONFIGS": 11,
    "IDEMPOTENT_WRITE": 12,
}
PATTERN_LITERAL, PERMISSION_ALLOW = 3, 3


def kafka_acls(args: argparse.Namespace) -> int:
    """CreateAcls v1: ALLOW, any host, literal resource names; one ACL per stdin line."""
    creations = []
    for line in sys.stdin.read().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        principal, resource, name, operation = line.split()
        creations.append(
            struct.pack(">b", ACL_RESOURCES[resource])
            + _s16(name)
            + struct.pack(">b", PATTERN_LITERAL)
            + _s16(principal)
            + _s16("*")
            + struct.pack(">bb", ACL_OPERATIONS[operation], PERMISSION_ALLOW)
        )
    kafka = _kafka_session(args)
    with kafka.sock:
        kafka.sock.settimeout(15)
        r = kafka.call(CREATE_ACLS, 1, struct.pack(">i", len(creations)) + b"".join(creations))
        r.take(">i")  # throttle
        errors = []
        for _ in range(r.take(">i")):
            code, message = r.take(">h"), r.string16()
            if code:
                errors.append(f"error {code}: {message}")
    if errors:
        raise ProbeError(f"kafka: CreateAcls failed: {'; '.join(errors)}")
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
OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE, OP_QUERY, OP_RESULT = 0, 1, 2, 3, 7, 8
OP_AUTH_CHALLENGE, OP_AUTH_RESPONSE, OP_AUTH_SUCCESS = 0x0E, 0x0F, 0x10
RESULT_ROWS = 0x0002


class _Cql:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream = 0

    def call(self, opcode: int, body: bytes) -> tuple[int, _Reader]:
        self.stream += 1
        self.sock.sendall(struct.pack(">BBhBi", CQL_V4, 0, self.stream, opcode, len(body)) + body)
        version, _flags, rstream, ropcode, length = struct.unpack(
            ">BBhBi", _recv_exact(self.sock, 9)
        )
        body_in = _recv_exact(self.sock, length)
        if version & 0x7F != CQL_V4 or rstream != self.stream:
            raise ProbeError(
                f"cassandra: unexpected frame (version {version:#x}, stream {rstream})"
            )
        r = _Reader(body_in)
        if ropcode == OP_ERROR:
            code = r.take(">i")
            raise ProbeError(f"cassandra: error {code:#06x}: {r.string16()}")
        return ropcode, r

    def startup(self, user: str | None, password: str | None) -> int:
        """STARTUP, then PLAIN authentication if the server asks; returns STARTUP's answer."""
        first, _ = self.call(OP_STARTUP, struct.pack(">H", 1) + _s16("CQL_VERSION") + _s16("3.0.0"))
        if first == OP_READY:
            return first
        if first != OP_AUTHENTICATE:
            raise ProbeError(f"cassandra: STARTUP answered opcode {first:#x}")
        if user is None or password is None:
            return first
        op, _ = self.call(OP_AUTH_RESPONSE, _b32(b"\0" + user.encode() + b"\0" + password.encode()))
        if op != OP_AUTH_SUCCESS:
            raise ProbeError(f"cassandra: authentication answered opcode {op:#x}")
        return first

    def query(self, cql: str) -> list[list[Any]]:
        q = cql.encode()
        op, r = self.call(OP_QUERY, _b32(q) + struct.pack(">HB", 0x0001, 0))  # ONE, no flags
        if op != OP_RESULT:
            raise ProbeError(f"cassandra: query answered opcode {op:#x}")
        if r.take(">i") != RESULT_ROWS:
            return []
        flags, ncols = r.take(">ii")
        if flags & 0x0002:  # has_more_pages
            r.raw(max(r.take(">i"), 0))
        types = []
        if not flags & 0x0004:  # metadata present
            if flags & 0x0001:  # global table spec
                r.string16()
                r.string16()
            for _ in range(ncols):
                if not flags & 0x0001:
                    r.string16()
                    r.string16()
                r.string16()
                types.append(_read_type(r))
        rows = []
        for _ in range(r.take(">i")):
            rows.append([_decode(types[i] if types else -1, r.bytes32()) for i in range(ncols)])
        return rows


def _read_type(r: _Reader) -> int:
    tid: int = r.take(">H")
    if tid == 0x0000:  # custom
        r.string16()
    elif tid in (0x0020, 0x0022):  # list, set
        _read_type(r)
    elif tid == 0x0021:  # map
        _read_type(r)
        _read_type(r)
    elif tid == 0x0030:  # udt
        r.string16()
        r.string16()
        for _ in range(r.take(">H")):
            r.string16()
            _read_type(r)
    elif tid == 0x0031:  # tuple
        for _ in range(r.take(">H")):
            _read_type(r)
    return tid


def _decode(tid: int, value: bytes | None) -> Any:
    if value is None:
        return None
    if tid in (0x0001, 0x000D):  # ascii, varchar
        return value.decode("utf-8", "replace")
    if tid in (0x0002, 0x0009):  # bigint, int
        return int.from_bytes(value, "big", signed=True)
    if tid == 0x0004:  # boolean
        return value != b"\0"
    if tid == 0x000C:  # uuid
        return str(uuid.UUID(bytes=value))
    if tid == 0x0010:  # inet
        return socket.inet_ntop(socket.AF_INET if len(value) == 4 else socket.AF_INET6, value)
    return value.hex()


def _cql_session(args: argparse.Namespace) -> tuple[_Cql, int]:
    cql = _Cql(_connect(args.host, args.port, args.cafile))
    password = _password(args) if args.user else None
    return cql, cql.startup(args.user, password)


def cassandra_ready(args: argparse.Namespace) -> int:
    cql, first = _cql_session(args)
    with cql.sock:
        if args.auth_required:
            if first != OP_AUTHENTICATE:
                raise ProbeError("cassandra: the server does not ask for authentication")
            print("asks for authentication")
            return 0
        if first == OP_AUTHENTICATE and args.user is None:
            raise ProbeError("cassandra: authentication is on: pass --user")
        rows = cql.query("SELECT release_version FROM system.local")
        if not rows:
            raise ProbeError("cassandra: system.local is empty")
        version = rows[0][0]
        if args.peers:
            peers = cql.query("SELECT peer FROM system.peers")
            if len(peers) < args.peers:
                raise ProbeError(f"cassandra: knows {len(peers)} of {args.peers} peers")
    print(f"{version}, {args.peers} peers" if args.peers else version)
    return 0


def cql_statements(args: argparse.Namespace) -> int:
    statements = [
        line.strip().rstrip(";")
        for line in sys.stdin.read().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "--"))
    ]
    cql, first = _cql_session(args)
    with cql.sock:
        cql.sock.settimeout(30)  # schema and role changes wait for agreement
        if first == OP_AUTHENTICATE and args.user is None:
            raise ProbeError("cassandra: authentication is on: pass --user")
        for statement in statements:
            for row in cql.query(statement):
                print("\t".join("" if v is None else str(v) for v in row))
    return 0


# ---------------------------------------------------------------------------- main
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="probe.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("port-free").add_argument("items", nargs="+")
    sub.add_parser("kafka-cluster-id")
    for name in ("kafka", "kafka-acls", "cassandra", "cql"):
        p = sub.add_parser(name)
        p.add_argument("host")
        p.add_argument("port", type=int)
        p.add_argument("--cafile")
        p.add_argument("--user")
        p.add_argument("--password-env", default="PROBE_PASSWORD")
        if name.startswith("kafka"):
            p.add_argument("--mechanism", default="SCRAM-SHA-512")
        if name == "kafka":
            p.add_argument("--brokers", type=int, default=1)
        if name == "cassandra":
            p.add_argument("--peers", type=int, default=0)
            p.add_argument("--auth-required", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "port-free": lambda: port_free(args.items),
        "kafka-cluster-id": kafka_cluster_id,
        "kafka": lambda: kafka_ready(args),
        "kafka-acls": lambda: kafka_acls(args),
        "cassandra": lambda: cassandra_ready(args),
        "cql": lambda: cql_statements(args),
    }
    try:
        return commands[args.cmd]()
    except (OSError, ProbeError, struct.error, IndexError, KeyError, ValueError) as exc:
        kind = f"{type(exc).__name__}: " if isinstance(exc, OSError) else ""
        print(f"{args.cmd}: {kind}{exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
