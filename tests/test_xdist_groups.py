"""``make test`` runs the suite with pytest-xdist's ``--dist loadgroup``: the tests of one ``xdist_group`` run on one
worker, so a group's module-scoped live servers (peers nodes, certmonger, serve.py, the benchmark smoke runs) are set
up once. The scheduler reads a test's group from the ``@<group>`` suffix that xdist gives its node id on the worker;
when a pytest or xdist upgrade drops that suffix, nothing fails but every group is split across the workers, as
with pytest 9.2 and xdist 3.8 (tests/conftest.py's pytest_collection_modifyitems puts it back)."""

from __future__ import annotations

import os

import pytest


def _groups(item: pytest.Item) -> set[str]:
    return {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
            for mark in item.iter_markers("xdist_group")}


def test_every_grouped_test_carries_its_group_to_the_scheduler(request):
    if not (os.environ.get("PYTEST_XDIST_WORKER") and request.config.getvalue("loadgroup")):
        pytest.skip("the groups apply under pytest-xdist's --dist loadgroup (make test)")
    from xdist.scheduler import LoadGroupScheduling

    grouped = {item.nodeid: "_".join(sorted(groups)) for item in request.session.items if (groups := _groups(item))}
    if not grouped:
        pytest.skip("no test of this run is in an xdist_group")
    # The scheduler's own reading of each id: the group, not the test, is the unit it hands to one worker.
    scopes = {nodeid: LoadGroupScheduling._split_scope(None, nodeid) for nodeid in grouped}  # type: ignore[arg-type]
    split = sorted(nodeid for nodeid, group in grouped.items() if scopes[nodeid] != group)
    assert not split, f"{len(split)} grouped tests would be scheduled one by one, e.g. {split[:3]}"
