"""Finds every service and the heuristics catalogue they share.

Services are discovered, not listed: any concrete :class:`Service` subclass with a ``name``
in a module of ``assay.services`` is registered, so adding a service is adding one file.
Shared helpers live in ``assay.services.lib`` and are never searched.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from assay.services.base import Heuristic, Service

SERVICE_PACKAGES = ("assay.services",)
_SKIP_MODULES = {"base", "registry"}
_extra_modules: list[str] = []


def load_extra(modules: list[str] | tuple[str, ...]) -> None:
    """Also take services from these modules (``[services] extra_modules``: plugins of your own)."""
    added = [m for m in modules if m not in _extra_modules]
    if added:
        _extra_modules.extend(added)
        services.cache_clear()
        heuristics.cache_clear()


def _collect(module: object, found: dict[str, type[Service]]) -> None:
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Service) and value.name and value is not Service:
            found[value.name] = value


def _service_classes() -> list[type[Service]]:
    found: dict[str, type[Service]] = {}
    for module_name in _extra_modules:
        _collect(importlib.import_module(module_name), found)
    for package_name in SERVICE_PACKAGES:
        try:
            package = importlib.import_module(package_name)
        except ModuleNotFoundError:
            continue
        for info in pkgutil.iter_modules(package.__path__):
            if info.ispkg or info.name in _SKIP_MODULES or info.name.startswith("_"):
                continue
            _collect(importlib.import_module(f"{package_name}.{info.name}"), found)
    return sorted(found.values(), key=lambda cls: (cls.stage, cls.name))


@cache
def services() -> tuple[Service, ...]:
    """One instance of every service, in running order (stage, then name)."""
    return tuple(cls() for cls in _service_classes())


def service(name: str) -> Service | None:
    for candidate in services():
        if candidate.name.lower() == name.lower():
            return candidate
    return None


@cache
def heuristics() -> dict[str, Heuristic]:
    """The catalogue: every heuristic any service declares, by id."""
    catalogue: dict[str, Heuristic] = {}
    for svc in services():
        for heuristic in svc.heuristics:
            if heuristic.id in catalogue and catalogue[heuristic.id] != heuristic:
                raise ValueError(f"heuristic {heuristic.id} is declared twice with different content")
            catalogue[heuristic.id] = heuristic
    return catalogue


def score_of(heuristic_ids: list[str]) -> int:
    catalogue = heuristics()
    return sum(catalogue[h].score for h in heuristic_ids if h in catalogue)
