"""The settings model: config.ini and ``ASSAY_<SECTION>_<KEY>`` as documented, typos and bad values
stop start-up with the key's name, and the README's table is the model's.

Run ``.venv/bin/python -m tests.unit.test_settings`` to rewrite the README's table from the model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Ge, Le
from pydantic.fields import FieldInfo

from assay.config import ConfigError, Settings, load_settings, sections

README = Path(__file__).resolve().parents[2] / "README.md"
TABLE_START = "<!-- settings table: generated from assay/config.py, checked by tests/unit/test_settings.py -->"
TABLE_END = "<!-- end of settings table -->"


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(text)
    return path


def test_an_unknown_key_stops_start_up_naming_the_key_and_the_file(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[limits]\nmax_file_sise = 10\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(ini, tmp_path, environ={})
    message = str(raised.value)
    assert str(ini) in message and "[limits] max_file_sise" in message and "max_file_size?" in message


def test_an_unknown_section_stops_start_up(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[limit]\nmax_depth = 3\n")
    with pytest.raises(ConfigError, match=r"config\.ini: unknown section \[limit\] \(did you mean limits\?\)"):
        load_settings(ini, tmp_path, environ={})


def test_a_wrong_type_stops_start_up_naming_file_section_and_key(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[queue]\nworkers = two\n[intel]\npublish = perhaps\n")
    with pytest.raises(ConfigError) as raised:
        load_settings(ini, tmp_path, environ={})
    message = str(raised.value)
    assert f"{ini}: [queue] workers = 'two'" in message and f"{ini}: [intel] publish = 'perhaps'" in message
    assert "\n" not in message


def test_a_value_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[web\] port = '70000'"):
        load_settings(write_ini(tmp_path, "[web]\nport = 70000\n"), tmp_path, environ={})


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"environment variable ASSAY_LIMITS_MAX_DEPTH: \[limits\] max_depth"):
        load_settings(None, tmp_path, environ={"ASSAY_LIMITS_MAX_DEPTH": "deep"})


def test_the_environment_overrides_the_file_and_lists_are_comma_separated(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[limits]\nmax_file_size = 1000\nmax_depth = 2\n[services]\ndisabled = PE\n")
    environ = {"ASSAY_LIMITS_MAX_FILE_SIZE": "2000", "ASSAY_SERVICES_EXTRA_MODULES": "mine.one, mine.two,"}
    settings = load_settings(ini, tmp_path, environ=environ)
    assert settings.limits.max_file_size == 2000 and settings.limits.max_depth == 2
    assert settings.services.extra_modules == ("mine.one", "mine.two") and settings.services.disabled == ("PE",)
    assert settings.limits.service_attempts == 3  # the model's default, named nowhere else


def test_assay_config_names_the_file_and_an_empty_value_means_the_default(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[queue]\nbroker_url = redis://127.0.0.1:6379/0\n[intel]\nowner =\n")
    assert not load_settings(None, tmp_path, environ={"ASSAY_CONFIG": str(ini)}).embedded
    settings = load_settings(None, tmp_path, environ={"ASSAY_CONFIG": str(ini), "ASSAY_QUEUE_BROKER_URL": ""})
    assert settings.embedded and settings.intel.owner == "Assay"


def test_iotinsight_alias_keys(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[web]\nthreaded = false\n[redis]\nhost = 10.1.2.3\nport = 6380\ndb = 4\n")
    settings = load_settings(ini, tmp_path, environ={"ASSAY_REDIS_DB": "5"})
    assert settings.broker_url == "redis://10.1.2.3:6380/5" and not settings.embedded
    assert settings.web.threaded is False
    explicit = load_settings(ini, tmp_path, environ={"ASSAY_QUEUE_BROKER_URL": "amqp://guest:guest@h:5672//"})
    assert explicit.broker_url == "amqp://guest:guest@h:5672//"


def test_stray_assay_variables_are_ignored(tmp_path: Path) -> None:
    environ = {"ASSAY_FOO": "1", "ASSAY_WEB_NOPE": "x", "ASSAY_SERVER": "http://h", "ASSAY_APIKEY": "k:s"}
    assert load_settings(None, tmp_path, environ=environ) == load_settings(None, tmp_path, environ={})


def test_derived_paths_follow_the_data_dir_and_the_storage_path(tmp_path: Path) -> None:
    settings = load_settings(None, tmp_path / "d", environ={"ASSAY_STORAGE_PATH": str(tmp_path / "shared")})
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'assay.db'}"
    assert settings.yara_dir == tmp_path / "shared" / "signatures" / "yara"


def test_assay_serve_with_a_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    ini = write_ini(tmp_path, "[web]\nport = 8000\nthreads = 4\n")
    done = subprocess.run(
        [sys.executable, "-m", "assay", "serve", "--config", str(ini), "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    expected = f"assay: {ini}: [web] threads is not a setting (did you mean threaded?)"
    assert done.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "d").exists()  # nothing started


# -- the README's table --------------------------------------------------------------------------
def type_name(field: FieldInfo) -> str:
    names = {str: "text", bool: "true/false", int: "integer"}
    name = names.get(field.annotation, "list")  # type: ignore[arg-type]
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    if low is not None and high is not None:
        return f"{name} {low} to {high}"
    return f"{name} ≥ {low}" if low is not None else name


def shown(default: Any) -> str:
    if default in ("", ()):
        return "empty"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    return f"`{default}`"


def settings_table() -> str:
    """The README's configuration table, one row per key, from the model."""
    rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for section, model in sections().items():
        for key, field in model.model_fields.items():
            rows.append(f"| `[{section}] {key}` | {type_name(field)} | {shown(field.default)} | {field.description} |")
    return "\n".join(rows)


def readme_table(text: str) -> str:
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[start:end].strip()


def test_every_key_has_a_meaning() -> None:
    missing = [f"[{s}] {k}" for s, m in sections().items() for k, f in m.model_fields.items() if not f.description]
    assert missing == []
    assert set(Settings.model_fields) == {"data_dir", *sections()}


def test_the_readme_table_is_the_model() -> None:
    assert readme_table(README.read_text(encoding="utf-8")) == settings_table(), (
        "the README's settings table differs from assay/config.py: run .venv/bin/python -m tests.unit.test_settings"
    )


def rewrite_readme() -> None:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    README.write_text(f"{text[:start]}\n{settings_table()}\n{text[end:]}", encoding="utf-8")


if __name__ == "__main__":
    rewrite_readme()
