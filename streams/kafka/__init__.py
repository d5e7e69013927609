"""Kafka on the users' side: client construction, publishing events, watching updates."""
