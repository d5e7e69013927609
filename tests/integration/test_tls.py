"""Host names are checked on every client: a server whose certificate comes from the
trusted CA but names another host is refused, by the Kafka clients and by the Cassandra
driver alike (before, the Cassandra context accepted any certificate of the CA, so the
Kafka broker's would have done).

The server here is a bare TLS listener on 127.0.0.1 with a certificate the local secure
CA signs (deploy/local/.cache/secure/ca.key) for `wrong-host.invalid` only; a second one,
for 127.0.0.1, shows that the refusal is the host name's and not the chain's.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest_servers import servers_home
from tests.integration.secure_harness import SecurePipeline, cli, one_line_error

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]


def _certificate(tmp: Path, name: str, san: str) -> tuple[Path, Path]:
    """A key and a certificate signed by the local secure CA for `san`."""
    secure = servers_home() / "secure"
    key, csr, crt, ext = (tmp / f"{name}.{x}" for x in ("key", "csr", "crt", "ext"))
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    for command in (
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", f"/CN={name}"],
        ["openssl", "x509", "-req", "-sha256", "-days", "1", "-in", csr,
         "-CA", secure / "ca.pem", "-CAkey", secure / "ca.key", "-CAcreateserial",
         "-CAserial", tmp / "ca.srl", "-extfile", ext, "-out", crt],
    ):  # fmt: skip
        subprocess.run([str(c) for c in command], check=True, capture_output=True)
    return key, crt


class _TlsListener:
    """Accepts connections on 127.0.0.1 and completes (or fails) the TLS handshake with
    its certificate; nothing else is spoken."""

    def __init__(self, key: Path, crt: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(crt, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(raw, server_side=True) as tls:
                    self.handshakes += 1
                    tls.settimeout(1)
                    tls.recv(1024)
            except (OSError, ssl.SSLError):
                pass
            finally:
                raw.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def listeners(
    secure_servers: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, _TlsListener]]:
    tmp = tmp_path_factory.mktemp("tls")
    found = {
        "wrong": _TlsListener(*_certificate(tmp, "wrong-host", "DNS:wrong-host.invalid")),
        "right": _TlsListener(*_certificate(tmp, "right-host", "IP:127.0.0.1")),
    }
    yield found
    for listener in found.values():
        listener.close()


def _cassandra_url(port: int) -> str:
    return f"cassandra://127.0.0.1:{port}/interest_stream"


def test_cassandra_refuses_a_certificate_for_another_host(
    secure_pipeline: SecurePipeline, listeners: dict[str, _TlsListener]
):
    secure = secure_pipeline.secure
    wrong = listeners["wrong"]
    env = {"INTEREST_STREAM_STORE_URL": _cassandra_url(wrong.port)}
    result = cli(secure, "reader", "profile", "get", "space-fan", env=env)
    error = one_line_error(result)
    assert "cannot connect to Cassandra" in error and "mismatch" in error, error
    # the same CA, the right host: the handshake passes (then the listener says nothing)
    right = listeners["right"]
    env = {"INTEREST_STREAM_STORE_URL": _cassandra_url(right.port)}
    other = one_line_error(cli(secure, "reader", "profile", "get", "space-fan", env=env))
    assert "mismatch" not in other and "CERTIFICATE_VERIFY_FAILED" not in other, other
    assert right.handshakes >= 1


def test_kafka_refuses_a_certificate_for_another_host(
    secure_pipeline: SecurePipeline, listeners: dict[str, _TlsListener]
):
    secure = secure_pipeline.secure
    wrong = listeners["wrong"]
    env = {"INTEREST_STREAM_BROKERS": f"127.0.0.1:{wrong.port}"}
    error = one_line_error(cli(secure, "producer", "publish", "-", stdin="", env=env))
    assert "refused the TLS connection" in error and "mismatch" in error, error
    right = listeners["right"]
    env = {"INTEREST_STREAM_BROKERS": f"127.0.0.1:{right.port}"}
    other = one_line_error(cli(secure, "producer", "publish", "-", stdin="", env=env))
    assert "mismatch" not in other, other
    assert right.handshakes >= 1
