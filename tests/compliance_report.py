"""`make compliance`: a matrix of RFC sections against the tests that check them.

Loaded as a pytest plugin (`-p tests.compliance_report`); reads each test's `spec` markers.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

RFCS = [
    "RFC 6749",
    "RFC 6750",
    "RFC 7009",
    "RFC 7636",
    "RFC 7662",
    "RFC 8414",
    "RFC 9207",
    "RFC 9700",
]

_sections: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
_outcomes: dict[str, str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark in item.iter_markers("spec"):
            rfc, section = ([*list(mark.args), "", ""])[:2]
            _sections[(str(rfc), str(section))].append((item.nodeid, item.name))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[report.nodeid] = report.outcome


def _key(section: str) -> list[int]:
    return [int(p) if p.isdigit() else 0 for p in section.split(".")]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    tr = terminalreporter
    tr.section("RFC compliance matrix")
    for rfc in RFCS + sorted({r for r, _ in _sections} - set(RFCS)):
        rows = sorted(
            ((s, t) for (r, s), t in _sections.items() if r == rfc), key=lambda x: _key(x[0])
        )
        if not rows:
            tr.write_line(f"{rfc:<9} (no tests)")
            continue
        for section, tests in rows:
            outcomes = [_outcomes.get(nodeid, "not run") for nodeid, _ in tests]
            passed = outcomes.count("passed")
            verdict = (
                "PASS"
                if passed == len(outcomes)
                else "FAIL"
                if "failed" in outcomes
                else "INCOMPLETE"
            )
            names = ", ".join(name for _, name in tests)
            tr.write_line(f"{rfc:<9} §{section:<8} {verdict:<10} {passed}/{len(outcomes)}  {names}")
