"""Hardening suites print what they tried: each test adds figures with `report(...)`, and the
terminal summary at the end of the run shows them (visible without -s)."""

from __future__ import annotations

from collections import defaultdict

import pytest

_FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
_LINES: list[str] = []


def report_add(section: str, **counts: int) -> None:
    """Add counts to a section of the summary (summed over tests)."""
    for key, value in counts.items():
        _FIGURES[section][key] += value


def report_line(line: str) -> None:
    _LINES.append(line)


@pytest.fixture
def report():
    class _Report:
        add = staticmethod(report_add)
        line = staticmethod(report_line)

    return _Report


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded files of these suites go to a temporary folder, not the checkout's .data/."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES and not _LINES:
        return
    terminalreporter.section("hardening: what the suites tried")
    for section, counts in _FIGURES.items():
        figures = ", ".join(f"{k}={v}" for k, v in counts.items())
        terminalreporter.write_line(f"{section}: {figures}")
    for line in _LINES:
        terminalreporter.write_line(line)
