"""Loupe router: exactly-once routing of live predictions to auto-accept, review or the DLQ."""
