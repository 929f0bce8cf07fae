"""``python -m loupe.resolver`` runs the streaming worker (same as ``loupe resolver``)."""

from loupe.resolver.worker import run

if __name__ == "__main__":
    run()
