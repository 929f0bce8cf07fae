"""``python -m loupe.stack``: the stack commands without the ``loupe`` entry point."""

from loupe.stack.cli import stack

stack()
