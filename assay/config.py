"""Settings: the packaged defaults, then the user's config.ini, then ``ASSAY_<SECTION>_<KEY>``.

Everything that reads configuration goes through :class:`Settings`; nothing deeper in the code
reads ``os.environ``.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

ENV_PREFIX = "ASSAY_"


@dataclass(frozen=True)
class Settings:
    """Typed view over the merged configuration."""

    data_dir: Path
    raw: Mapping[str, Mapping[str, str]] = field(repr=False)

    def get(self, section: str, key: str, default: str = "") -> str:
        return self.raw.get(section, {}).get(key, default).strip()

    def get_int(self, section: str, key: str, default: int = 0) -> int:
        value = self.get(section, key)
        try:
            return int(value) if value else default
        except ValueError as exc:
            raise ConfigError(f"[{section}] {key} must be a whole number, not {value!r}") from exc

    def get_bool(self, section: str, key: str, default: bool = False) -> bool:
        value = self.get(section, key).lower()
        if not value:
            return default
        if value in {"1", "true", "yes", "on"}:
            return True
        if value in {"0", "false", "no", "off"}:
            return False
        raise ConfigError(f"[{section}] {key} must be true or false, not {value!r}")

    def get_list(self, section: str, key: str) -> list[str]:
        return [item.strip() for item in self.get(section, key).split(",") if item.strip()]

    @property
    def database_url(self) -> str:
        return self.get("database", "url") or f"sqlite:///{self.data_dir / 'assay.db'}"

    @property
    def broker_url(self) -> str:
        """Empty in embedded mode; IoTInsight's ``[redis]`` keys are honoured as an alias."""
        url = self.get("queue", "broker_url")
        if not url and self.get("redis", "host"):
            url = f"redis://{self.get('redis', 'host')}:{self.get_int('redis', 'port', 6379)}/" + str(
                self.get_int("redis", "db", 0)
            )
        return url

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def storage_path(self) -> Path:
        path = self.get("storage", "path")
        return Path(path) if path else self.data_dir / "files"

    @property
    def yara_dir(self) -> Path:
        """The live YARA rule sets (``[signatures] yara_dir``; under the storage path by default)."""
        configured = self.get("signatures", "yara_dir")
        return Path(configured) if configured else self.storage_path / "signatures" / "yara"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key."""


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge defaults, an optional ini file and the environment into :class:`Settings`.

    ``config_file`` defaults to ``$ASSAY_CONFIG`` or ``./config.ini`` when it exists;
    ``data_dir`` to ``$ASSAY_DATA_DIR`` or ``./data``.
    """
    env = os.environ if environ is None else environ
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(resources.files("assay").joinpath("default.ini").read_text())
    path = config_file or env.get("ASSAY_CONFIG") or ("config.ini" if Path("config.ini").is_file() else None)
    if path:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path} does not exist")
        parser.read(path)
    raw = {section: dict(parser[section]) for section in parser.sections()}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or name in {"ASSAY_CONFIG", "ASSAY_DATA_DIR"}:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if key:
            raw.setdefault(section, {})[key] = value
    directory = Path(data_dir or env.get("ASSAY_DATA_DIR") or "data").absolute()
    return Settings(data_dir=directory, raw=raw)
