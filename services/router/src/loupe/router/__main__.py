"""``python -m loupe.router``: same as ``loupe router``."""

from loupe.router.cli import router

if __name__ == "__main__":
    router()
