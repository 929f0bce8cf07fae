"""Loupe's local embedded stack: a real Apache Kafka 4.x broker and redis-server on loopback.

``LocalStack(settings).up()`` starts both (fetching the Kafka jars with Maven on first use),
creates the Loupe topics and returns a ``StackInfo``; ``down()`` stops exactly what it started.
"""

from loupe.stack.errors import StackError
from loupe.stack.models import ComponentStatus, StackInfo, State
from loupe.stack.ports import free_port, free_ports
from loupe.stack.settings import StackSettings, get_settings
from loupe.stack.stack import LocalStack

__all__ = [
    "ComponentStatus",
    "LocalStack",
    "StackError",
    "StackInfo",
    "StackSettings",
    "State",
    "free_port",
    "free_ports",
    "get_settings",
]
