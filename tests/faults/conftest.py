"""The fault suite (issue 11): real nats-server, real `cotal-tui daemon` / `cotal-tui up`
processes killed by pid. `make test` runs the short version (one run of each `faults` test);
`make faults` runs the full one (``COTAL_FAULTS=full COTAL_FAULT_RUNS=3``: the `faults_full`
tests too, and three runs of each repeated one)."""

from __future__ import annotations

import pytest
from harness import full_suite


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if full_suite():
        return
    skip = pytest.mark.skip(reason="full fault suite only: `make faults`")
    for item in items:
        if "faults_full" in item.keywords:
            item.add_marker(skip)
