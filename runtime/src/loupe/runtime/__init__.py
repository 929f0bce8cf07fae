"""Loupe's small shared runtime: settings base, Kafka and Redis clients, health server, CLI root."""
