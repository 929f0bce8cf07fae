"""``python -m loupe.resolver`` runs the streaming worker (same as ``loupe resolver``)."""

from loupe.resolver.cli import resolver

if __name__ == "__main__":
    resolver()
