"""Readiness probes and small admin steps for the deploy/local scripts, through the drivers.

    probe.py port-free [HOST:]PORT...          exit 0 if every port can be bound (HOST
                                               default 127.0.0.1); else print the busy ones
    probe.py kafka-cluster-id                  print a new random Kafka cluster id
    probe.py kafka HOST PORT [--brokers N]     exit 0 if the cluster lists a controller and
                                               at least N brokers (kafka-python)
    probe.py kafka-acls HOST PORT              create the ACLs read from stdin, one a line:
                                               PRINCIPAL TOPIC|GROUP|CLUSTER NAME OPERATION
    probe.py cassandra HOST PORT [--peers N]   exit 0 if `SELECT release_version FROM
                                               system.local` answers on that node (and its
                                               system.peers has N rows); prints the version
    probe.py cql HOST PORT                     run the CQL statements read from stdin, one a
                                               line; print the rows, tab-separated

The first two need only the standard library (nothing else does them for us); the others
use kafka-python and cassandra-driver, so the interpreter must have the project's `kafka`
and `cassandra` extras (`make install-all`; `lib.sh` checks before starting servers).

Options of the server commands, for the secure servers:
    --cafile CA.pem     TLS, the server's certificate verified against this CA (Kafka: and
                        its host name)
    --user NAME         SASL/SCRAM-SHA-512 (Kafka) or password authentication (Cassandra);
                        the password is read from the environment variable PROBE_PASSWORD
                        (or the one --password-env names), never from the command line
    --auth-required     (cassandra) exit 0 as soon as the server refuses a client without
                        credentials: it is up, its roles may not exist yet

Each probe makes one attempt with a short timeout; the shell scripts do the polling.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import socket
import ssl
import sys
import uuid
from typing import Any

TIMEOUT_S = 3.0


class ProbeError(Exception):
    pass


def _password(args: argparse.Namespace) -> str:
    value = os.environ.get(args.password_env)
    if value is None:
        raise ProbeError(f"--user {args.user} needs the password in ${args.password_env}")
    return value


# ------------------------------------------------------------ what no driver does for us
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


def kafka_cluster_id() -> int:
    # Kafka's Uuid: 16 random bytes, url-safe base64 without padding, never starting with '-'.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            print(cid)
            return 0


# --------------------------------------------------------------------------- kafka
def _kafka_admin(args: argparse.Namespace, timeout_s: float = TIMEOUT_S) -> Any:
    from kafka.admin import KafkaAdminClient

    options: dict[str, Any] = {}
    if args.cafile:
        # kafka-python verifies the chain and the host name (ssl_check_hostname default).
        options.update(ssl_cafile=args.cafile, ssl_check_hostname=True)
    if args.user:
        options.update(
            sasl_mechanism=args.mechanism,
            sasl_plain_username=args.user,
            sasl_plain_password=_password(args),
        )
    protocol = ("SASL_" if args.user else "") + ("SSL" if args.cafile else "PLAINTEXT")
    millis = int(timeout_s * 1000)
    return KafkaAdminClient(
        bootstrap_servers=f"{args.host}:{args.port}",
        security_protocol=protocol,
        client_id="interest-stream-probe",
        request_timeout_ms=millis,
        bootstrap_timeout_ms=millis,
        **options,
    )


def kafka_ready(args: argparse.Namespace) -> int:
    admin = _kafka_admin(args)
    try:
        cluster = admin.describe_cluster()
    finally:
        admin.close()
    brokers = [
        f"{b['broker_id']}@{b['host']}:{b['port']}"
        for b in cluster.get("brokers", [])
        if not b.get("is_fenced", False)
    ]
    controller = cluster.get("controller_id", -1)
    if len(brokers) < max(args.brokers, 1) or controller is None or controller < 0:
        raise ProbeError(f"kafka: not ready (brokers={brokers}, controller={controller})")
    print(f"cluster {cluster.get('cluster_id')}, brokers {','.join(sorted(brokers))}")
    return 0


def kafka_acls(args: argparse.Namespace) -> int:
    """ALLOW, any host, literal resource names; one ACL per stdin line."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ResourcePattern,
        ResourceType,
    )

    acls = []
    for line in sys.stdin.read().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        principal, resource, name, operation = line.split()
        acls.append(
            ACL(
                principal=principal,
                host="*",
                operation=ACLOperation[operation],
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePattern(ResourceType[resource], name),
            )
        )
    admin = _kafka_admin(args, timeout_s=15)
    try:
        result = admin.create_acls(acls)
    finally:
        admin.close()
    if result["failed"]:
        raise ProbeError(f"kafka: CreateAcls failed: {result['failed']}")
    return 0


# ----------------------------------------------------------------------- cassandra
def _cassandra_session(args: argparse.Namespace, timeout_s: float, with_user: bool = True) -> Any:
    """A session that talks to this node alone (a probe asks about one node, not the ring)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import WhiteListRoundRobinPolicy

    options: dict[str, Any] = {}
    if args.cafile:
        context = ssl.create_default_context(cafile=args.cafile)
        # Chain and host name are both checked: with check_hostname on (the default here),
        # the driver passes the node's address as the server name.
        options["ssl_context"] = context
    if with_user and args.user:
        options["auth_provider"] = PlainTextAuthProvider(args.user, _password(args))
    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([args.host]), request_timeout=timeout_s
    )
    cluster = Cluster(
        [args.host],
        port=args.port,
        protocol_version=4,  # what the store speaks (store/cassandra/connect.py says why)
        connect_timeout=TIMEOUT_S,
        control_connection_timeout=TIMEOUT_S,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        **options,
    )
    try:
        return cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


def _refused_for_credentials(exc: Exception) -> bool:
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    if isinstance(exc, AuthenticationFailed):
        return True
    errors = exc.errors.values() if isinstance(exc, NoHostAvailable) else []
    return any(isinstance(e, AuthenticationFailed) for e in errors)


def cassandra_ready(args: argparse.Namespace) -> int:
    if args.auth_required:
        try:
            session = _cassandra_session(args, TIMEOUT_S, with_user=False)
        except Exception as exc:
            if _refused_for_credentials(exc):
                print("asks for authentication")
                return 0
            raise
        session.cluster.shutdown()
        raise ProbeError("cassandra: the server does not ask for authentication")
    session = _cassandra_session(args, TIMEOUT_S)
    try:
        row = session.execute("SELECT release_version FROM system.local").one()
        if row is None:
            raise ProbeError("cassandra: system.local is empty")
        if args.peers:
            peers = list(session.execute("SELECT peer FROM system.peers"))
            if len(peers) < args.peers:
                raise ProbeError(f"cassandra: knows {len(peers)} of {args.peers} peers")
    finally:
        session.cluster.shutdown()
    print(f"{row.release_version}, {args.peers} peers" if args.peers else row.release_version)
    return 0


def cql_statements(args: argparse.Namespace) -> int:
    statements = [
        line.strip().rstrip(";")
        for line in sys.stdin.read().splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "--"))
    ]
    session = _cassandra_session(args, timeout_s=30)  # schema and role changes wait for agreement
    try:
        for statement in statements:
            for row in session.execute(statement):
                print("\t".join("" if v is None else str(v) for v in row))
    finally:
        session.cluster.shutdown()
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
    # The drivers log every failed attempt; a probe's one line on failure is enough.
    logging.basicConfig(level=logging.CRITICAL)
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
    except ImportError as exc:
        print(f"{args.cmd}: {exc}: install the kafka and cassandra extras", file=sys.stderr)
        return 1
    except Exception as exc:  # any failure is "not ready" (or "failed") for the caller
        print(f"{args.cmd}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
