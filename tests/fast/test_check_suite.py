"""The deployment check's pytest module runs every contract suite but the archive's."""

from __future__ import annotations

from eventlab._check import _suite
from eventlab.contracts import ArchiveContract, ArchiveScavengeContract


def test_no_archive_test_is_collected_by_the_check() -> None:
    archive_tests = {
        name
        for suite in (ArchiveContract, ArchiveScavengeContract)
        for name in dir(suite)
        if name.startswith("test_")
    }
    assert len(archive_tests) > 15  # the suites are made of several classes: all of them
    for case in (_suite.TestContractsTransactional, _suite.TestContractsPreallocated):
        collected = {n for n in dir(case) if n.startswith("test_") and getattr(case, n)}
        assert collected and not collected & archive_tests
