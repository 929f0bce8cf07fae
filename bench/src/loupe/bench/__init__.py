"""Loupe benchmarks: each prints one JSON object comparing against a same-run baseline."""
