"""Shared fixtures: the local-server fixtures (Kafka, Cassandra) are a plugin module."""

pytest_plugins = ["tests.integration.conftest_servers"]
