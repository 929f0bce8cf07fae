"""The one exception type the local stack raises for problems a user can act on."""


class StackError(RuntimeError):
    """A readable failure: missing tools, a busy port, a broker that did not start."""
