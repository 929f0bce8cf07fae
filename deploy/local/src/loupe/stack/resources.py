"""Files shipped with the package (pom, log4j2 and server.properties templates)."""

from __future__ import annotations

from importlib.resources import files
from string import Template


def read_asset(name: str) -> str:
    """The text of ``assets/<name>``."""
    return files("loupe.stack").joinpath("assets", name).read_text(encoding="utf-8")


def render_asset(name: str, **values: object) -> str:
    """``assets/<name>`` with its ``$placeholders`` filled in (all must be given)."""
    return Template(read_asset(name)).substitute({key: str(v) for key, v in values.items()})
