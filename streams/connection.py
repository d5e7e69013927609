"""How every Kafka client of this project connects, translated from `Settings` once.

kafka-python (`publish`, `watch`, `init`, `forget`), aiokafka (the benchmark's ceiling, the
refusal probe) and Faust (the worker) each take the same facts in their own shape: the
brokers, the security protocol, the SASL mechanism and credentials, the CA. `KafkaConnection`
holds those facts, checked (SASL needs a user and a password; PLAIN is never sent in clear
unless allowed), and gives each client its keyword arguments. Faust's credential objects are
built from it in `streams/worker.py`, the only module that imports Faust.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.settings import Settings, env_name

DEFAULT_MECHANISM = "SCRAM-SHA-512"
PRODUCER_BATCH_BYTES = 256 * 1024
"""Largest batch of records the worker's producer sends to one partition in one request.
aiokafka keeps one request in flight per broker, and an update with its vectors is about
16 KiB: at Faust's default (16 KiB) a flush's updates went one per partition per round trip
(0.3-0.5 s for 350 updates, measured). The topics the worker writes must accept a batch this
large (`max.message.bytes`, 1 MiB by default); `init` reports one that does not."""


@dataclass(frozen=True)
class KafkaConnection:
    """The checked connection facts of one process; build it with `from_settings`."""

    brokers: str
    protocol: str
    mechanism: str | None
    """The SASL mechanism of the SASL protocols, None without SASL."""
    username: str | None
    password: str | None
    cafile: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        """The connection `settings` describe.

        Args:
            settings: The process's settings.

        Returns:
            The checked connection.

        Raises:
            ConfigurationError: SASL without a user or password, or PLAIN over an
                unencrypted connection (the password in clear) without
                `allow_plaintext_password`.
        """
        protocol = settings.kafka_security_protocol
        mechanism = None
        username = password = None
        if protocol.startswith("SASL"):
            if settings.kafka_username is None or settings.kafka_password is None:
                raise ConfigurationError(
                    f"security protocol {protocol} needs {env_name('kafka_username')} and"
                    f" {env_name('kafka_password')}"
                )
            mechanism = settings.kafka_sasl_mechanism or DEFAULT_MECHANISM
            if (
                mechanism == "PLAIN"
                and protocol == "SASL_PLAINTEXT"
                and not settings.allow_plaintext_password
            ):
                raise ConfigurationError(
                    f"Kafka SASL PLAIN over {protocol} would send the password of user"
                    f" {settings.kafka_username!r} in clear: use SASL_SSL (or SCRAM), or set"
                    f" {env_name('allow_plaintext_password')}=true on a network you trust"
                )
            username = settings.kafka_username
            password = settings.kafka_password.get_secret_value()
        return cls(
            brokers=settings.brokers,
            protocol=protocol,
            mechanism=mechanism,
            username=username,
            password=password,
            cafile=settings.kafka_ssl_cafile,
        )

    def __repr__(self) -> str:
        """The connection without its password, which never reaches a log line."""
        return (
            f"KafkaConnection(brokers={self.brokers!r}, protocol={self.protocol!r},"
            f" mechanism={self.mechanism!r}, username={self.username!r})"
        )

    @property
    def tls(self) -> bool:
        """Whether the protocol encrypts (SSL, SASL_SSL)."""
        return self.protocol.endswith("SSL")

    def servers(self) -> list[str]:
        """The bootstrap servers, `host:port` each.

        Returns:
            The configured brokers, in order.

        Raises:
            ConfigurationError: None are configured.
        """
        servers = [b.strip() for b in self.brokers.split(",") if b.strip()]
        if not servers:
            raise ConfigurationError("no Kafka brokers configured: pass --brokers host:port")
        return servers

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of the encrypting protocols.

        The configured CA (else the system's), host names checked.

        Returns:
            The context, or None for PLAINTEXT and SASL_PLAINTEXT.

        Raises:
            ConfigurationError: The CA file cannot be read.
        """
        if not self.tls:
            return None
        try:
            return ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"cannot use Kafka CA file {self.cafile}: {exc}") from exc

    def _sasl(self) -> dict[str, Any]:
        if self.mechanism is None:
            return {}
        return {
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }

    def kafka_python(self) -> dict[str, Any]:
        """kafka-python keyword arguments (producer, consumer, admin) for the security part.

        Returns:
            `security_protocol`, the CA file with host names checked, the SASL options.
        """
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_check_hostname"] = True  # kafka-python's default, stated: never off
            if self.cafile is not None:
                options["ssl_cafile"] = str(self.cafile)
        return {**options, **self._sasl()}

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka clients for the security part.

        aiokafka takes an SSL context where kafka-python takes a CA file.

        Returns:
            `security_protocol`, the SSL context, the SASL options.
        """
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        return {**options, **self._sasl()}
