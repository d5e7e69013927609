"""Shared fixtures. The local-server fixtures (Kafka, Cassandra) live in a plugin module."""

from __future__ import annotations

import pytest

from interest_stream.encoders.base import Encoder

pytest_plugins = ["tests.integration.conftest_servers", "tests.integration.secure_harness"]


@pytest.fixture(scope="session")
def onnx_encoder() -> Encoder:
    """The real fp32 sentence encoder, exported on first use (cached across runs)."""
    from interest_stream.encoders import EncoderNotExportedError, load_encoder

    try:
        return load_encoder(precision="fp32")
    except EncoderNotExportedError:
        from interest_stream.encoders.export import export_encoder

        export_encoder(precision="fp32")
        return load_encoder(precision="fp32")
