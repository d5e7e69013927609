"""One translation of the Kafka settings for every client (streams/connection.py)."""

from __future__ import annotations

import ssl

import pytest

from interest_stream.streams.connection import KafkaConnection
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.settings import load_settings

SASL_SSL = {
    "brokers": "k1:9094, k2:9094",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_username": "worker",
    "kafka_password": "s3cret-pw",
}


def test_every_client_gets_the_same_facts_in_its_own_shape() -> None:
    connection = KafkaConnection.from_settings(load_settings(**SASL_SSL))
    assert connection.servers() == ["k1:9094", "k2:9094"]
    sasl = {
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "worker",
        "sasl_plain_password": "s3cret-pw",
    }
    assert connection.kafka_python() == {
        "security_protocol": "SASL_SSL",
        "ssl_check_hostname": True,
        **sasl,
    }
    aio = connection.aiokafka()
    context = aio.pop("ssl_context")
    assert aio == {"security_protocol": "SASL_SSL", **sasl}
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED


def test_plaintext_has_no_tls_and_no_sasl() -> None:
    connection = KafkaConnection.from_settings(load_settings(brokers="127.0.0.1:9092"))
    assert connection.ssl_context() is None and connection.mechanism is None
    assert connection.kafka_python() == {"security_protocol": "PLAINTEXT"}
    assert connection.aiokafka() == {"security_protocol": "PLAINTEXT"}


def test_the_password_never_reaches_a_log_line() -> None:
    connection = KafkaConnection.from_settings(load_settings(**SASL_SSL))
    assert "s3cret-pw" not in repr(connection) and "s3cret-pw" not in str(connection)


def test_sasl_without_credentials_or_brokers_is_refused_in_one_line() -> None:
    without = {**SASL_SSL, "kafka_password": None}
    with pytest.raises(ConfigurationError, match="INTEREST_STREAM_KAFKA_PASSWORD"):
        KafkaConnection.from_settings(load_settings(**{**without, "kafka_username": None}))
    with pytest.raises(ConfigurationError, match="no Kafka brokers configured"):
        KafkaConnection.from_settings(load_settings(brokers=" , ")).servers()


def test_a_ca_file_that_cannot_be_read_names_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.pem"
    connection = KafkaConnection.from_settings(
        load_settings(**SASL_SSL, kafka_ssl_cafile=str(missing))
    )
    assert connection.kafka_python()["ssl_cafile"] == str(missing)
    with pytest.raises(ConfigurationError, match=r"nope\.pem"):
        connection.ssl_context()
