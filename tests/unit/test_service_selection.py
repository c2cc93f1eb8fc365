"""Which services run on a file: selection by name and category, exclusions, ``[services] disabled``,
stage order, and the accepts/rejects patterns matched against the file type.

The first half asks the real registry (the services Assay ships); the second a registry holding only
the fake services of :mod:`tests.helpers.fakes`, whose declarations the tests control.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from assay.dispatch.dispatcher import select_services
from assay.params import DEFAULT_CATEGORIES, parse_params
from assay.services import registry
from assay.services.base import Service, Stage
from tests.helpers.fakes import fake_registry


def chosen(params: dict[str, Any] | None = None, disabled: set[str] | None = None) -> list[str]:
    return [s.name for s in select_services(parse_params(params or {}), disabled or set())]


def shipped(name: str) -> Service:
    service = registry.service(name)
    assert service is not None, f"Assay ships a service named {name}"
    return service


# -- the services Assay ships --------------------------------------------------------------------
def test_by_default_every_enabled_service_of_the_default_categories_runs_and_identification_first() -> None:
    names = chosen()
    for service in registry.services():
        expected = service.stage == Stage.IDENTIFY or (
            service.category in DEFAULT_CATEGORIES and service.default_enabled
        )
        assert (service.name in names) == expected, service.name
    assert {"Identify", "Digests", "Safelist", "Extract", "PE", "YARA"} <= set(names)
    assert names[:2] == ["Digests", "Identify"]


def test_services_come_in_stage_order_then_by_name() -> None:
    services = select_services(parse_params({}), set())
    order = [(s.stage, s.name) for s in services]
    assert order == sorted(order)
    stages = [s.stage for s in services]
    assert stages.index(Stage.FILTER) < stages.index(Stage.EXTRACT) < stages.index(Stage.CORE)


def test_selecting_a_category_runs_only_its_services_besides_identification() -> None:
    names = chosen({"services": {"selected": ["Extraction"]}})
    assert "Extract" in names and "PE" not in names and "Safelist" not in names
    assert all(shipped(n).category == "Extraction" or shipped(n).stage == Stage.IDENTIFY for n in names)


def test_selecting_a_service_by_name_runs_it_alone_with_identification_and_names_ignore_case() -> None:
    assert chosen({"services": {"selected": ["PE"]}}) == ["Digests", "Identify", "PE"]
    assert chosen({"services": {"selected": ["pe", "yara"]}}) == ["Digests", "Identify", "PE", "YARA"]


def test_an_exclusion_by_name_or_category_wins_but_identification_always_runs() -> None:
    names = chosen({"services": {"excluded": ["Static Analysis", "safelist"]}})
    assert "Extract" in names
    assert not {"PE", "YARA", "Strings", "Safelist"} & set(names)
    assert chosen({"services": {"selected": ["PE"], "excluded": ["PE", "Identify"]}}) == ["Digests", "Identify"]


def test_a_disabled_service_runs_only_when_selected_by_name() -> None:
    # the dispatcher passes ``[services] disabled`` lower-cased
    assert "YARA" not in chosen(disabled={"yara"})
    assert "YARA" in chosen({"services": {"selected": ["Static Analysis", "YARA"]}}, disabled={"yara"})


@pytest.mark.parametrize(
    ("service", "file_type", "runs"),
    [
        ("PE", "executable/windows/pe32", True),
        ("PE", "executable/linux/elf64", False),
        ("ELF", "executable/linux/elf64", True),
        ("Extract", "archive/zip", True),
        ("Extract", "archive/zipx", False),  # the whole type must match, not a prefix
        ("Extract", "document/office/word", False),
        ("Entropy", "executable/windows/pe32", True),
        ("Entropy", "archive/zip", False),  # rejected: archives are extracted instead
        ("Entropy", "image/png", False),
        ("Strings", "text/plain", True),
        ("Strings", "empty", False),  # every service but identification rejects empty files
        ("Identify", "empty", True),
        ("Digests", "empty", True),
        ("NetworkCapture", "network/tcpdump", True),
        ("NetworkCapture", "network/tcpdump-ish", False),
    ],
)
def test_a_service_takes_the_file_types_its_patterns_accept_and_do_not_reject(
    service: str, file_type: str, runs: bool
) -> None:
    assert shipped(service).accepts_type(file_type) is runs


# -- a registry of fake services -----------------------------------------------------------------
@pytest.fixture
def fakes() -> Iterator[None]:
    with fake_registry():
        yield


@pytest.mark.usefixtures("fakes")
def test_the_registry_orders_services_by_stage_then_name_whatever_the_module_order() -> None:
    assert [s.name for s in registry.services()] == [
        "Typer",  # IDENTIFY
        "Gate",  # FILTER
        "Unpacker",  # EXTRACT
        "Detonator",  # CORE, by name
        "Matcher",
        "Peeker",
        "Refiner",
        "Sniffer",
        "Judge",  # SECONDARY
        "Reporter",  # POST
    ]


@pytest.mark.usefixtures("fakes")
def test_default_selection_leaves_out_other_categories_and_services_off_by_default() -> None:
    # Detonator is "Dynamic Analysis" (not a default category); Matcher is off by default
    assert chosen() == ["Typer", "Gate", "Unpacker", "Peeker", "Refiner", "Sniffer", "Judge", "Reporter"]


@pytest.mark.usefixtures("fakes")
def test_a_service_off_by_default_runs_when_named_not_when_its_category_is_selected() -> None:
    assert "Matcher" not in chosen({"services": {"selected": ["Static Analysis"]}})
    assert chosen({"services": {"selected": ["Matcher"]}}) == ["Typer", "Matcher"]


@pytest.mark.usefixtures("fakes")
def test_selecting_another_category_adds_its_services() -> None:
    assert chosen({"services": {"selected": ["Dynamic Analysis"]}}) == ["Typer", "Detonator"]
    assert "Detonator" in chosen({"services": {"selected": [*DEFAULT_CATEGORIES, "dynamic analysis"]}})


@pytest.mark.usefixtures("fakes")
def test_disabled_and_excluded_services_of_a_selected_category() -> None:
    assert "Sniffer" not in chosen(disabled={"sniffer"})
    assert "Sniffer" in chosen({"services": {"selected": ["Antivirus", "Sniffer"]}}, disabled={"sniffer"})
    assert "Sniffer" not in chosen({"services": {"selected": ["Sniffer"], "excluded": ["Antivirus"]}})
    assert chosen({"services": {"excluded": ["Typer"]}})[0] == "Typer"
