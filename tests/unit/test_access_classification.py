"""The classification engine: TLP 2.0 markings in every spelling, access decisions, combinations."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest

from assay.access import (
    MAX_MARKING_LENGTH,
    BadClassificationConfig,
    ClassificationConfig,
    ClassificationEngine,
    Clearance,
    GroupDef,
    LevelDef,
    NoCommonGroup,
    UnknownMarking,
)

GROUPS = (GroupDef("G1"), GroupDef("G2"), GroupDef("Incident Response", "IR", ("CSIRT",)))
ENGINE = ClassificationEngine.tlp_default(groups=GROUPS)
_NOBODY = "no group in common"
TLP = ("TLP:CLEAR", "TLP:GREEN", "TLP:AMBER", "TLP:AMBER+STRICT", "TLP:RED")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("TLP:CLEAR", "TLP:CLEAR"),
        ("TLP:C", "TLP:CLEAR"),
        ("TLP:W", "TLP:CLEAR"),
        ("TLP:WHITE", "TLP:CLEAR"),
        ("TLP:GREEN", "TLP:GREEN"),
        ("TLP:G", "TLP:GREEN"),
        ("TLP:AMBER", "TLP:AMBER"),
        ("TLP:A", "TLP:AMBER"),
        ("TLP:AMBER+STRICT", "TLP:AMBER+STRICT"),
        ("TLP:A+S", "TLP:AMBER+STRICT"),
        ("TLP:RED", "TLP:RED"),
        ("TLP:R", "TLP:RED"),
    ],
)
def test_every_long_short_and_alias_form_in_any_case(text: str, canonical: str) -> None:
    for spelling in (text, text.lower(), text.title(), f"  {text.lower()}\t"):
        assert ENGINE.normalise(spelling) == canonical


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("tlp:a//rel to g1,g2", "TLP:AMBER//REL TO G1, G2"),
        ("TLP:A//REL G2, G1", "TLP:AMBER//REL TO G1, G2"),
        ("tlp:a // rel  to g2 ,g1, G2", "TLP:AMBER//REL TO G1, G2"),
        ("TLP:R//REL TO IR", "TLP:RED//REL TO INCIDENT RESPONSE"),
        ("tlp:g//rel to csirt, incident   response", "TLP:GREEN//REL TO INCIDENT RESPONSE"),
        ("TLP:A+S//REL IR, G1", "TLP:AMBER+STRICT//REL TO G1, INCIDENT RESPONSE"),
    ],
)
def test_rel_to_groups_are_resolved_sorted_and_deduplicated(text: str, canonical: str) -> None:
    assert ENGINE.normalise(text) == canonical
    assert ENGINE.normalise(canonical) == canonical


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("BANANA//NOFORN", "unknown level 'BANANA'"),
        ("x" * 200, "unknown level"),
        ("", "unknown level ''"),
        ("TLP:AMBER//NOFORN", "unknown part 'NOFORN'"),
        ("TLP:AMBER//REL TO G3", "unknown group 'G3'"),
        ("TLP:AMBER//REL TO", "REL TO names no group"),
        ("TLP:AMBER//REL TO G1,", "unknown group ''"),
        ("TLP:AMBER//", "unknown part ''"),
        ("TLP:AMBER//REL TO G1//REL TO G2", "more than one '//' part"),
        ("TLP:AMBER/REL TO G1", "unknown level"),
        ("TLP:AMBER\x00", "unknown level"),
    ],
)
def test_unknown_markings_name_the_accepted_ones(text: str, why: str) -> None:
    with pytest.raises(UnknownMarking) as raised:
        ENGINE.normalise(text)
    message = str(raised.value)
    assert why in message
    assert "TLP:CLEAR (TLP:C, TLP:W, TLP:WHITE)" in message and "TLP:AMBER+STRICT (TLP:A+S)" in message
    assert "INCIDENT RESPONSE (IR, CSIRT)" in message
    assert isinstance(raised.value, ValueError)


def test_overlong_and_non_text_input_is_refused_without_echoing_it() -> None:
    with pytest.raises(UnknownMarking, match=f"at most {MAX_MARKING_LENGTH} characters") as raised:
        ENGINE.normalise("TLP:A//REL TO " + "G1," * 1000)
    assert len(str(raised.value)) < 1000
    with pytest.raises(UnknownMarking, match="not NoneType"):
        ENGINE.normalise(None)  # type: ignore[arg-type]


def test_without_groups_configured_the_message_says_so() -> None:
    with pytest.raises(UnknownMarking, match="no REL TO groups are configured"):
        ClassificationEngine.tlp_default().normalise("TLP:A//REL TO G1")


def test_level_index_orders_levels_for_sql_filtering() -> None:
    assert [ENGINE.level_index(level) for level in TLP] == [0, 1, 2, 3, 4]
    assert ENGINE.level_index("tlp:a//rel g1") == ENGINE.level_index("TLP:AMBER") == 2
    assert ENGINE.levels == TLP


def test_groups_of() -> None:
    assert ENGINE.groups_of("TLP:A") == frozenset()
    assert ENGINE.groups_of("tlp:a//rel ir, g2") == {"G2", "INCIDENT RESPONSE"}


@pytest.mark.parametrize("user_level", TLP)
@pytest.mark.parametrize("item_level", TLP)
def test_levels_decide_access_without_groups(user_level: str, item_level: str) -> None:
    user = Clearance(user_level)
    assert ENGINE.is_accessible(user, item_level) == (TLP.index(item_level) <= TLP.index(user_level))


def test_groups_restrict_whatever_the_level() -> None:
    red_without_g = Clearance("TLP:RED", frozenset({"G2"}))
    green_in_g = Clearance("TLP:GREEN", frozenset({"G1"}))
    assert not ENGINE.is_accessible(red_without_g, "TLP:GREEN//REL TO G1")
    assert not ENGINE.is_accessible(Clearance("TLP:RED"), "TLP:GREEN//REL TO G1")
    assert ENGINE.is_accessible(green_in_g, "TLP:GREEN//REL TO G1")
    assert ENGINE.is_accessible(green_in_g, "TLP:GREEN//REL TO G1, G2")
    assert not ENGINE.is_accessible(green_in_g, "TLP:AMBER//REL TO G1")
    assert ENGINE.is_accessible(green_in_g, "TLP:CLEAR")


def test_a_users_groups_match_by_any_spelling_and_unknown_ones_match_nothing() -> None:
    user = Clearance("tlp:r", frozenset({"csirt", "not-a-classification-group"}))
    assert ENGINE.is_accessible(user, "TLP:A//REL TO INCIDENT RESPONSE")
    assert not ENGINE.is_accessible(user, "TLP:A//REL TO G1")


def test_clearance_is_validated_and_canonical() -> None:
    assert ENGINE.clearance("tlp:a+s", ["ir", "G1"]) == Clearance("TLP:AMBER+STRICT", {"INCIDENT RESPONSE", "G1"})
    with pytest.raises(UnknownMarking, match="unknown group 'NOPE'"):
        ENGINE.clearance("TLP:A", ["nope"])
    with pytest.raises(UnknownMarking, match="names no groups"):
        ENGINE.is_accessible(Clearance("TLP:RED//REL TO G1"), "TLP:CLEAR")
    assert Clearance("TLP:A", {"G1"}).groups == frozenset({"G1"})  # any iterable, kept as a frozenset


def test_max_of_takes_the_highest_level_and_the_groups_all_share() -> None:
    assert ENGINE.max_of("TLP:G", "tlp:a", "TLP:C") == "TLP:AMBER"
    assert ENGINE.max_of("TLP:A") == "TLP:AMBER"
    assert ENGINE.max_of("TLP:G//REL G1", "TLP:A") == "TLP:AMBER//REL TO G1"
    assert ENGINE.max_of("TLP:G//REL G1, G2", "TLP:C//REL G2, IR") == "TLP:GREEN//REL TO G2"
    with pytest.raises(NoCommonGroup, match="nobody could see it"):
        ENGINE.max_of("TLP:G//REL G1", "TLP:G//REL G2")


def test_max_of_is_a_submissions_classification() -> None:
    """The highest of its parameters' marking and of what each service marked."""
    params, services = "TLP:GREEN//REL TO G1, G2", ["TLP:C", "TLP:A//REL G1", "TLP:G"]
    assert ENGINE.max_of(params, *services) == "TLP:AMBER//REL TO G1"


def test_min_of_takes_the_lowest_level_and_every_group_named() -> None:
    assert ENGINE.min_of("TLP:R", "TLP:G") == "TLP:GREEN"
    assert ENGINE.min_of("TLP:R//REL G1", "TLP:A//REL G2") == "TLP:AMBER//REL TO G1, G2"
    assert ENGINE.min_of("TLP:R//REL G1", "TLP:R") == "TLP:RED"


def test_a_file_seen_at_red_then_green_is_green() -> None:
    seen = ["TLP:RED", "TLP:GREEN"]
    assert ENGINE.min_of(*seen) == "TLP:GREEN"


def test_combinations_keep_who_may_see_them() -> None:
    """Whoever sees max_of sees every input; whoever sees any input sees min_of."""
    users = [Clearance(level, frozenset(g)) for level in TLP for g in _subsets(ENGINE.groups)]
    for a, b in itertools.combinations(_all_markings(), 2):
        low = ENGINE.min_of(a, b)
        for user in users:
            if ENGINE.is_accessible(user, a) or ENGINE.is_accessible(user, b):
                assert ENGINE.is_accessible(user, low)
        try:
            high = ENGINE.max_of(a, b)
        except NoCommonGroup:
            continue
        for user in users:
            if ENGINE.is_accessible(user, high):
                assert ENGINE.is_accessible(user, a) and ENGINE.is_accessible(user, b)


def test_normalise_is_idempotent_over_every_marking_and_spelling() -> None:
    for marking in _all_markings():
        for spelling in _spellings(marking):
            canonical = ENGINE.normalise(spelling)
            assert canonical == marking
            assert ENGINE.normalise(canonical) == canonical


def test_max_of_and_min_of_are_commutative_and_associative() -> None:
    rng = random.Random(20240601)
    markings = _all_markings()
    for _ in range(300):
        triple = rng.sample(markings, 3)
        for combine in (ENGINE.max_of, ENGINE.min_of):
            results = {_outcome(combine, *order) for order in itertools.permutations(triple)}
            results.add(_folded(combine, *triple))
            assert len(results) == 1, (combine.__name__, triple, results)


def test_a_custom_three_level_definition_works() -> None:
    config = ClassificationConfig(
        levels=(
            LevelDef("Open", "O", ("PUBLIC",)),
            LevelDef("Internal", "I"),
            LevelDef("Secret", "S", ("CONFIDENTIAL",)),
        ),
        groups=(GroupDef("Team A", "TA"), GroupDef("Team B", "TB")),
        default="internal",
    )
    engine = ClassificationEngine(config)
    assert engine.levels == ("OPEN", "INTERNAL", "SECRET")
    assert engine.normalise("confidential//rel ta, tb") == "SECRET//REL TO TEAM A, TEAM B"
    assert (engine.default, engine.unrestricted, engine.restricted) == ("INTERNAL", "OPEN", "SECRET")
    assert engine.is_accessible(Clearance("S", frozenset({"Team B"})), "I//REL TB")
    assert not engine.is_accessible(Clearance("I"), "S")
    assert engine.max_of("public", "I") == "INTERNAL" and engine.min_of("S", "I") == "INTERNAL"
    with pytest.raises(UnknownMarking, match=r"OPEN \(O, PUBLIC\), INTERNAL \(I\), SECRET \(S, CONFIDENTIAL\)"):
        engine.normalise("TLP:AMBER")


def test_tlp_default_unmarked_items_and_restricted() -> None:
    assert (ENGINE.default, ENGINE.restricted) == ("TLP:CLEAR", "TLP:RED")
    assert ClassificationEngine.tlp_default(default="tlp:a").default == "TLP:AMBER"


@pytest.mark.parametrize(
    ("config", "why"),
    [
        (ClassificationConfig(levels=()), "at least one level"),
        (ClassificationConfig(levels=(LevelDef("A", "X"), LevelDef("B", "x"))), "'X' is used twice"),
        (ClassificationConfig(levels=(LevelDef("A/B", "AB"),)), "holds '/' or ','"),
        (ClassificationConfig(levels=(LevelDef("A", "A"),), groups=(GroupDef("G, H"),)), "holds '/' or ','"),
        (ClassificationConfig(levels=(LevelDef("A", "A"),), groups=(GroupDef("G"), GroupDef("H", "G"))), "twice"),
        (ClassificationConfig(levels=(LevelDef("A", "A"),), default="B"), "default classification"),
        (ClassificationConfig(levels=(LevelDef("A", "A"),), restricted="A//REL TO G"), "restricted"),
    ],
)
def test_bad_definitions_are_refused(config: ClassificationConfig, why: str) -> None:
    with pytest.raises(BadClassificationConfig, match=why):
        ClassificationEngine(config)


def _subsets(items: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [combo for size in range(len(items) + 1) for combo in itertools.combinations(items, size)]


def _all_markings() -> list[str]:
    """Every canonical marking of ENGINE: each level, alone or with each set of groups."""
    rendered = []
    for level, groups in itertools.product(TLP, _subsets(ENGINE.groups)):
        rendered.append(f"{level}//REL TO {', '.join(sorted(groups))}" if groups else level)
    return rendered


def _spellings(marking: str) -> list[str]:
    """A canonical marking as a user might type it: short forms, lower case, reversed groups."""
    level, _, rel = marking.partition("//REL TO ")
    short = {"TLP:CLEAR": "tlp:w", "TLP:AMBER+STRICT": "tlp:a+s"}.get(level, level[:5].lower())
    if not rel:
        return [level, short, f" {short} "]
    groups = rel.replace("INCIDENT RESPONSE", "ir").split(", ")
    return [marking, f"{short}//rel {','.join(reversed(groups))}", f"{short} // REL TO {', '.join(groups * 2)}"]


def _outcome(combine: Callable[..., str], *markings: str) -> str:
    """``combine(*markings)``, with a sentinel for NoCommonGroup so outcomes can be compared."""
    try:
        return combine(*markings)
    except NoCommonGroup:
        return _NOBODY


def _folded(combine: Callable[..., str], first: str, second: str, third: str) -> str:
    """``combine`` two at a time, as code folding markings one by one would."""
    pair = _outcome(combine, first, second)
    return pair if pair == _NOBODY else _outcome(combine, pair, third)
