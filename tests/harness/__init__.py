"""Test harness: real Kafka and Redis for integration and end-to-end tests."""
