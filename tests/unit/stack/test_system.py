"""Java version parsing and tool checks."""

from __future__ import annotations

import pytest

from loupe.stack.errors import StackError
from loupe.stack.system import APT_PACKAGES, DEV_TOOLS, STACK_TOOLS, java_major_version


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "21.0.2" 2024-01-16 LTS', 21),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "11.0.22" 2024-01-16', 11),
        ('openjdk version "23-ea" 2024-09-17', 23),
        ('Picked up JAVA_TOOL_OPTIONS: -Xss1m\nopenjdk version "17.0.9" 2023-10-17', 17),
    ],
)
def test_java_major_version(output: str, major: int) -> None:
    assert java_major_version(output) == major


@pytest.mark.parametrize("output", ["", "bash: java: command not found", 'version "x.y"'])
def test_java_major_version_rejects_garbage(output: str) -> None:
    with pytest.raises(StackError):
        java_major_version(output)


def test_every_tool_has_an_apt_package() -> None:
    assert set(STACK_TOOLS) | set(DEV_TOOLS) <= set(APT_PACKAGES)
