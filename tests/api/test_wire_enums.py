"""Every value of every domain enum an answer shows has its 2021 text in an explicit table of
http/hcp_2021/wire.py (none reaches the wire as its Python value by accident), and the decode tables
are the exact inverses of the answer tables."""

from __future__ import annotations

from enum import StrEnum

import pytest

from packyard.domain import models as m
from packyard.domain.ancestry import AncestryStatus
from packyard.http.hcp_2021 import wire

TABLES: list[tuple[type[StrEnum], dict[str, StrEnum], dict[StrEnum, str]]] = [
    (m.BuildStatus, wire.BUILD_STATUS, wire.BUILD_STATUS_TEXT),  # type: ignore[list-item]
    (m.TemplateType, wire.TEMPLATE_TYPE, wire.TEMPLATE_TYPE_TEXT),  # type: ignore[list-item]
    (m.Tier, wire.TIER, wire.TIER_TEXT),  # type: ignore[list-item]
    (m.RevocationType, wire.REVOCATION_TYPE, wire.REVOCATION_TYPE_TEXT),  # type: ignore[list-item]
    (m.IterationStatus, wire.ITERATION_STATUS, wire.ITERATION_STATUS_TEXT),  # type: ignore[list-item]
    (AncestryStatus, wire.ANCESTRY_STATUS, wire.ANCESTRY_STATUS_TEXT),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("kind", "names", "texts"), TABLES, ids=[t[0].__name__ for t in TABLES])
def test_every_value_has_its_2021_text(
    kind: type[StrEnum], names: dict[str, StrEnum], texts: dict[StrEnum, str]
) -> None:
    assert set(texts) == set(kind)
    # A value the tree has no word for is shown as nothing (2021 has no incomplete iteration).
    assert set(names.values()) | {v for v, text in texts.items() if not text} == set(kind)
    for name, value in names.items():
        assert texts[value] in (name, "")  # UNSET is left out of answers


def test_iteration_status_values_are_not_2021_text() -> None:
    """Not stored, so the domain's values are its own: the 2021 text comes only from the table."""
    assert not {s.value for s in m.IterationStatus} & set(wire.ITERATION_STATUS)


def test_restriction_table_is_in_hashicorps_order() -> None:
    assert list(wire.RESTRICTION) == ["RESTRICTION_UNSET", "RESTRICTED", "UNRESTRICTED"]
