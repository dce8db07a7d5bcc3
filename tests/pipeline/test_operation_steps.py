"""The domain owns the call steps (domain/steps.py): an API tree declares an operation's decode and
answer, and names the domain's function for its call, precheck and reread, so the two trees' versions
of one operation that decode to the same command run the same step."""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import packyard.http
from packyard.http.factory import HCP_2021_ROUTES, HCP_2023_ROUTES
from packyard.http.resource_manager import ROUTES as RESOURCE_MANAGER_ROUTES
from packyard.http.routing import Route
from packyard.pipeline.operations import Operation

# The calls a tree keeps, each because what it answers is made of the tree's own path.
WIRE_CALLS = {
    "PackerService_GetRegistryTFCRunTaskAPI": "the run task's URL is under the tree's API path",
    "PackerService_GetSbom": "the download link is under the tree's API path",
}

# 2021-04-30's iterations are 2023-01-01's versions.
RENAMED = {
    f"PackerService_{old}": f"PackerService_{new}"
    for old, new in [
        ("CreateIteration", "CreateVersion"),
        ("GetIteration", "GetVersion"),
        ("ListIterations", "ListVersions"),
        ("UpdateIteration", "UpdateVersion"),
        ("DeleteIteration", "DeleteVersion"),
        ("ListChannelHistory", "ListChannelAssignmentHistory"),
    ]
}


def _operation(route: Route) -> Operation[Any, Any]:
    assert route.operation is not None, route.template
    return route.operation


def _command_type(op: Operation[Any, Any]) -> object:
    """What decode makes, as its annotation names it (None for the operations that take nothing)."""
    return typing.get_type_hints(op.decode)["return"]


def _steps(op: Operation[Any, Any]) -> list[Callable[..., Any]]:
    return [step for step in (op.call, op.precheck, op.reread) if step is not None]


def _in_domain(step: Callable[..., Any]) -> bool:
    return step.__module__.startswith("packyard.domain.")


def test_every_call_step_is_the_domains() -> None:
    routes = [*HCP_2021_ROUTES, *HCP_2023_ROUTES, *RESOURCE_MANAGER_ROUTES]
    kept = set()
    for route in routes:
        for step in _steps(_operation(route)):
            if not _in_domain(step):
                assert route.operation_id in WIRE_CALLS, f"{route.method} {route.template}: {step.__qualname__}"
                kept.add(route.operation_id)
    assert kept == set(WIRE_CALLS)  # each exception is still one


def test_the_trees_share_the_steps_of_one_operation() -> None:
    """Every 2021-04-30 operation has its 2023-01-01 version (under its own name or a new one); the
    two run the same steps unless they decode to different commands."""
    by_name = {r.operation_id: r for r in HCP_2023_ROUTES}
    pairs = [(r, by_name[RENAMED.get(r.operation_id, r.operation_id)]) for r in HCP_2021_ROUTES]
    assert len(pairs) == 28
    differ = set()
    for old, new in pairs:
        a, b = _operation(old), _operation(new)
        if _command_type(a) == _command_type(b) and old.operation_id not in WIRE_CALLS:
            assert (a.call, a.precheck, a.reread) == (b.call, b.precheck, b.reread), old.operation_id
        else:
            assert (a.call, a.precheck, a.reread) != (b.call, b.precheck, b.reread), old.operation_id
            differ.add(old.operation_id)
    # A build named by its id alone (2021) or with the version it must be of (2023).
    assert differ == {"PackerService_GetBuild", "PackerService_DeleteBuild", *WIRE_CALLS} - {"PackerService_GetSbom"}


# Words of the speed machinery (SQLite's writer lock, group commit, the read cache and its change stamps).
# HCP's own "enforced blocks" are not among them.
_MACHINERY = re.compile(r"\b(cache[ds]?|caching|stamps?|locks?|locked|locking|savepoints?|group commit|writer)\b", re.I)


def test_the_tree_modules_speak_no_speed_machinery() -> None:
    """A tree module declares decode, answer and which domain step runs; where and how the step runs
    (transactions, locks, the read cache) is the runner's and storage's alone (issue 16)."""
    trees = Path(packyard.http.__file__).parent
    found = [
        f"{path.relative_to(trees)}:{number}: {line.strip()}"
        for folder in ("hcp_2021", "hcp_2023")
        for path in sorted((trees / folder).glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _MACHINERY.search(line)
    ]
    assert found == []
