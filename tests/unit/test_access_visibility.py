"""The visibility condition: SQL that lets through exactly what ``is_accessible`` allows.

Every read query adds :func:`visible_to`, so it must agree with the engine's own decision for
every marking and every clearance; these tests run it over an in-memory SQLite table holding a
row per marking and compare, clearance by clearance.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select

from assay.access import ClassificationEngine, Clearance, GroupDef
from assay.access.visibility import Reader, stored_groups, stored_marking, visible_to

# "A_B" next to "AXB" and "A%" next to "AZ": LIKE wildcards in a group name must match literally.
GROUPS = (GroupDef("G1"), GroupDef("G2"), GroupDef("A_B"), GroupDef("AXB"), GroupDef("A%"), GroupDef("AZ"))
ENGINE = ClassificationEngine.tlp_default(groups=GROUPS)
LEVELS = ENGINE.levels
GROUP_SETS = [(), ("G1",), ("G2",), ("G1", "G2"), ("A_B",), ("AXB",), ("A%",), ("AZ",), ("A_B", "AZ")]


def _marking(level: str, groups: tuple[str, ...]) -> str:
    return f"{level}//REL TO {', '.join(groups)}" if groups else level


MARKINGS = [_marking(level, groups) for level in LEVELS for groups in GROUP_SETS]
CLEARANCES = [Clearance(level, frozenset(groups)) for level in LEVELS for groups in GROUP_SETS]


@pytest.fixture(scope="module")
def rows() -> Iterator[tuple[Engine, Table]]:
    database = create_engine("sqlite://")
    table = Table(
        "marked",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("classification", String),
        Column("classification_level", Integer),
        Column("classification_groups", String),
    )
    table.metadata.create_all(database)
    with database.begin() as connection:
        connection.execute(
            table.insert(), [{"id": n, **stored_marking(ENGINE, m).columns()} for n, m in enumerate(MARKINGS)]
        )
    yield database, table
    database.dispose()


def _visible(rows: tuple[Engine, Table], clearance: Clearance) -> set[str]:
    database, table = rows
    query = select(table.c.classification).where(visible_to(ENGINE, clearance, table))
    with database.connect() as connection:
        return set(connection.scalars(query))


@pytest.mark.parametrize("clearance", CLEARANCES, ids=lambda c: f"{c.level}:{'+'.join(sorted(c.groups)) or '-'}")
def test_the_condition_agrees_with_is_accessible(rows: tuple[Engine, Table], clearance: Clearance) -> None:
    expected = {ENGINE.normalise(m) for m in MARKINGS if ENGINE.is_accessible(clearance, m)}
    assert _visible(rows, clearance) == expected


def test_a_green_reader_sees_green_and_below_without_groups_only(rows: tuple[Engine, Table]) -> None:
    assert _visible(rows, Clearance("TLP:GREEN")) == {"TLP:CLEAR", "TLP:GREEN"}


def test_groups_hide_an_item_from_a_fully_cleared_reader_outside_them(rows: tuple[Engine, Table]) -> None:
    seen = _visible(rows, Clearance("TLP:RED", frozenset({"G2"})))
    assert "TLP:CLEAR//REL TO G1" not in seen and "TLP:RED//REL TO G1, G2" in seen


def test_like_wildcards_in_group_names_match_only_themselves(rows: tuple[Engine, Table]) -> None:
    seen = _visible(rows, Clearance("TLP:CLEAR", frozenset({"A_B", "A%"})))
    assert seen == {"TLP:CLEAR", "TLP:CLEAR//REL TO A_B", "TLP:CLEAR//REL TO A%", "TLP:CLEAR//REL TO AZ, A_B"}


def test_a_clearance_the_engine_cannot_read_sees_nothing(rows: tuple[Engine, Table]) -> None:
    assert _visible(rows, Clearance("SECRET")) == set()
    assert _visible(rows, Clearance("TLP:AMBER", frozenset({"NOT A GROUP"}))) == {"TLP:CLEAR", "TLP:GREEN", "TLP:AMBER"}


def test_a_reader_cleared_for_all_sees_every_row(rows: tuple[Engine, Table]) -> None:
    database, table = rows
    reader = Reader.cleared_for_all(ENGINE)
    with database.connect() as connection:
        assert len(connection.scalars(select(table.c.id).where(reader.sees(table))).all()) == len(MARKINGS)


def test_stored_markings_are_canonical_with_a_delimited_group_list() -> None:
    assert stored_marking(ENGINE, "tlp:a // rel g2,g1") == ("TLP:AMBER//REL TO G1, G2", 2, ",G1,G2,")
    assert stored_marking(ENGINE, "TLP:W") == ("TLP:CLEAR", 0, "")
    assert stored_groups([]) == "" and stored_groups(["B", "A"]) == ",A,B,"


def test_the_condition_is_built_from_a_cached_grant_and_bound_values() -> None:
    """Readers below the top level share one compiled statement: the clearance only changes bound values."""
    table = Table("t", MetaData(), Column("classification_level", Integer), Column("classification_groups", String))
    green = visible_to(ENGINE, Clearance("TLP:GREEN", frozenset({"G1"})), table)
    amber = visible_to(ENGINE, Clearance("TLP:AMBER", frozenset({"G2"})), table)
    assert str(green.compile()) == str(amber.compile())
    assert set(green.compile().params.values()) == {1, "", "%,G1,%"}


def test_a_reader_cleared_for_everything_adds_no_test_a_row_could_fail() -> None:
    """Searches by such a reader cost what they cost before classification existed."""
    table = Table("u", MetaData(), Column("classification_level", Integer), Column("classification_groups", String))
    everything = Reader.cleared_for_all(ENGINE).sees(table)
    top_without_groups = visible_to(ENGINE, Clearance("TLP:RED"), table)
    assert "classification" not in str(everything.compile())
    assert "classification_level" not in str(top_without_groups.compile())
    assert "classification_groups" in str(top_without_groups.compile())

