"""Settings: one typed model holding every key's type, default and meaning.

Values come from the model's defaults, then the user's ``config.ini``, then ``ASSAY_<SECTION>_<KEY>``
variables. Everything that reads configuration goes through :class:`Settings`; nothing deeper in
the code reads ``os.environ``. A key the model does not know, or a value of the wrong type, stops
start-up with a :class:`ConfigError` naming the file or variable, the section and the key: a typo
must not silently fall back to a default.
"""

from __future__ import annotations

import configparser
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

ENV_PREFIX = "ASSAY_"


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names where it came from and the key."""


def _comma_separated(value: object) -> object:
    """Lists are written ``a, b, c`` in ini files and environment variables alike."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_separated)]
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
PortNumber = Annotated[int, Field(ge=1, le=65535)]


class ConfigSection(BaseModel):
    """One ``[section]`` of config.ini; its fields are the section's keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WebSettings(ConfigSection):
    host: str = Field("127.0.0.1", description="address the API listens on (also `assay serve --host`)")
    port: PortNumber = Field(8000, description="port the API listens on (also `assay serve --port`)")
    tls_cert: str = Field("", description="PEM certificate for HTTPS, with `tls_key` (also `--tls-cert`)")
    tls_key: str = Field("", description="PEM private key for HTTPS (also `--tls-key`)")
    threaded: bool = Field(True, description="IoTInsight's key: accepted and ignored (the server is always concurrent)")


class DatabaseSettings(ConfigSection):
    url: str = Field(
        "", description="empty: SQLite file `<data dir>/assay.db`; `postgresql+psycopg://user@host/db` for scale-out"
    )
    pool_size: Positive = Field(10, description="PostgreSQL connections each process keeps open")


class QueueSettings(ConfigSection):
    broker_url: str = Field(
        "",
        description="empty: embedded mode (local workers poll the database); `redis://127.0.0.1:6379/0` or "
        "`amqp://guest:guest@127.0.0.1:5672//`: scale-out with Celery",
    )
    workers: Count = Field(2, description="embedded worker processes `assay serve` starts (0: none)")
    lease_seconds: Positive = Field(
        300, description="seconds a worker owns a submission before another may take it over"
    )
    redispatch_seconds: Positive = Field(
        600, description="seconds after which a published but unclaimed submission is published again"
    )
    batch_size: Positive = Field(16, description="submissions one worker claims at a time")


class StorageSettings(ConfigSection):
    path: str = Field("", description="the content-addressed file store (shareable); empty: `<data dir>/files`")


class LimitsSettings(ConfigSection):
    max_file_size: Positive = Field(104_857_600, description="bytes (100 MiB); larger uploads get 413")
    max_backlog: Positive = Field(
        200_000,
        description="queued submissions beyond which ingest answers 503 (the client retries); past half of it, "
        "low-priority ingests are skipped with a message",
    )
    max_extracted_ingest: Count = Field(100, description="extracted files an ingest analyses at most")
    max_extracted_submit: Count = Field(500, description="extracted files a submission analyses at most")
    max_depth: Count = Field(6, description="extraction levels below the submitted file")
    priority_cap: Positive = Field(250, description="the highest priority an ingest may ask for")
    service_timeout: Positive = Field(60, description="seconds one service may spend on one file")
    service_memory_mb: Count = Field(2048, description="address space of the service sandbox, MiB (0: no limit)")
    service_attempts: Positive = Field(3, description="analyses of a submission tried before it fails")
    max_metadata_keys: Count = Field(200, description="metadata keys an ingest may carry")
    max_metadata_value: Positive = Field(4096, description="characters of one metadata value")


class CacheSettings(ConfigSection):
    ttl_seconds: Count = Field(172_800, description="seconds an ingest can complete from an earlier identical one")
    error_ttl_seconds: Count = Field(1800, description="the same for earlier runs that had errors")


class AuthSettings(ConfigSection):
    session_duration: Positive = Field(3600, description="seconds a web login session lasts")


class ServicesSettings(ConfigSection):
    extra_modules: CommaList = Field((), description="modules holding your own Service classes (comma separated)")
    disabled: CommaList = Field((), description="services not run unless selected by name (comma separated)")


class TasksSettings(ConfigSection):
    allowed_roots: CommaList = Field(
        (), description="IoTInsight tasks accept server paths only under these directories (comma separated)"
    )
    bulk_max_files: Positive = Field(1000, description="files a bulk request takes at most (more: 400)")
    bulk_max_depth: Count = Field(8, description="directory levels a bulk request walks")
    smartthings_base_url: str = Field("", description="SmartThings API base URL; empty: the public endpoint")
    alexa_base_url: str = Field("", description="Alexa API base URL; empty: the public endpoint")
    account_workers: Positive = Field(4, description="account collections running at once in the API process")
    account_max_waiting: Count = Field(64, description="account collections waiting at most (then 503)")
    account_timeout: Positive = Field(
        1800, description="seconds after which an unfinished collection is reported as failed"
    )
    case_max_timeline: Positive = Field(100_000, description="timeline entries a case answer holds at most")

    def base_url(self, service: str) -> str:
        """The configured API base URL of an account ``service``; empty means its public endpoint."""
        return {"smartthings": self.smartthings_base_url, "alexa": self.alexa_base_url}.get(service, "")


class SignaturesSettings(ConfigSection):
    yara_dir: str = Field(
        "", description="YARA rule sets; empty: `<storage path>/signatures/yara` (seeded with the bundled rules)"
    )


class RedisSettings(ConfigSection):
    host: str = Field("", description="IoTInsight's key: with `[queue] broker_url` empty, use this Redis as broker")
    port: PortNumber = Field(6379, description="IoTInsight's key: that Redis's port")
    db: Count = Field(0, description="IoTInsight's key: that Redis's database number")


class IntelSettings(ConfigSection):
    publish: bool = Field(True, description="write each completed submission's findings to the intel store")
    owner: str = Field("Assay", description="the owner (organisation or source) published items belong to")
    min_score: int = Field(0, description="File indicators are published for files scoring at least this")
    publish_interval: Positive = Field(2, description="seconds between publication rounds of an idle worker")
    publish_batch: Positive = Field(200, description="submissions one publication round takes")
    publish_max_delay: Count = Field(
        30, description="a busy worker analyses first and publishes only what has waited this many seconds"
    )
    tag_types: CommaList = Field(
        (), description="network tags published as indicators; empty: network.static/dynamic ip, domain, uri, email"
    )


class ClassificationSettings(ConfigSection):
    levels: CommaList = Field(
        (),
        description="markings, lowest first, each `NAME=SHORT|ALIAS|...` (comma separated); "
        "empty: TLP 2.0 (TLP:CLEAR, TLP:GREEN, TLP:AMBER, TLP:AMBER+STRICT, TLP:RED, with Assemblyline's short forms)",
    )
    groups: CommaList = Field(
        (), description="groups a marking may be released to (`REL TO`), each `NAME=SHORT|ALIAS|...` (comma separated)"
    )
    default: str = Field("", description="the marking of what is submitted without one; empty: the lowest level")
    new_user_clearance: str = Field("", description="clearance of a user added without one; empty: the lowest level")


class Settings(BaseModel):
    """The whole configuration: one field per section, plus the data directory it applies to."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    web: WebSettings = WebSettings()
    database: DatabaseSettings = DatabaseSettings()
    queue: QueueSettings = QueueSettings()
    storage: StorageSettings = StorageSettings()
    limits: LimitsSettings = LimitsSettings()
    cache: CacheSettings = CacheSettings()
    auth: AuthSettings = AuthSettings()
    services: ServicesSettings = ServicesSettings()
    tasks: TasksSettings = TasksSettings()
    signatures: SignaturesSettings = SignaturesSettings()
    redis: RedisSettings = RedisSettings()
    intel: IntelSettings = IntelSettings()
    classification: ClassificationSettings = ClassificationSettings()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'assay.db'}"

    @property
    def broker_url(self) -> str:
        """Empty in embedded mode; IoTInsight's ``[redis]`` keys are honoured as an alias."""
        if self.queue.broker_url or not self.redis.host:
            return self.queue.broker_url
        return f"redis://{self.redis.host}:{self.redis.port}/{self.redis.db}"

    @property
    def embedded(self) -> bool:
        return not self.broker_url

    @property
    def storage_path(self) -> Path:
        return Path(self.storage.path) if self.storage.path else self.data_dir / "files"

    @property
    def yara_dir(self) -> Path:
        """The live YARA rule sets (``[signatures] yara_dir``; under the storage path by default)."""
        configured = self.signatures.yara_dir
        return Path(configured) if configured else self.storage_path / "signatures" / "yara"


def sections() -> dict[str, type[ConfigSection]]:
    """ConfigSection name -> its model, in the order the model declares them."""
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, ConfigSection)
    }


Values = dict[str, dict[str, str]]
Origins = dict[tuple[str, str], str]


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the model's defaults, an optional ini file and the environment into :class:`Settings`.

    ``config_file`` defaults to ``$ASSAY_CONFIG`` or ``./config.ini`` when it exists; ``data_dir``
    to ``$ASSAY_DATA_DIR`` or ``./data``. An empty value means the key's default, whichever layer
    sets it (so ``ASSAY_QUEUE_BROKER_URL=`` forces embedded mode).
    """
    env = os.environ if environ is None else environ
    values: Values = {}
    origins: Origins = {}
    path = config_file or env.get("ASSAY_CONFIG") or ("config.ini" if Path("config.ini").is_file() else None)
    if path:
        _read_ini(Path(path), values, origins)
    _read_environ(env, values, origins)
    directory = Path(data_dir or env.get("ASSAY_DATA_DIR") or "data").absolute()
    given = {section: {k: v.strip() for k, v in keys.items() if v.strip()} for section, keys in values.items()}
    try:
        return Settings.model_validate({"data_dir": directory, **given})
    except ValidationError as exc:
        raise ConfigError("; ".join(_describe(error, origins) for error in exc.errors())) from None


def _read_ini(path: Path, values: Values, origins: Origins) -> None:
    """Every key of ``path`` into ``values``; a section or key the model lacks is an error."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    # No default section: a [DEFAULT] would silently add its keys to every section.
    parser = configparser.ConfigParser(interpolation=None, default_section="")
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not an ini file: {' '.join(str(exc).split())}") from None
    known = sections()
    for section in parser.sections():
        if section not in known:
            raise ConfigError(f"{path}: unknown section [{section}]{_suggest(section, known)}")
        keys = known[section].model_fields
        for key, value in parser.items(section, raw=True):
            if key not in keys:
                raise ConfigError(f"{path}: [{section}] {key} is not a setting{_suggest(key, keys)}")
            values.setdefault(section, {})[key] = value
            origins[(section, key)] = str(path)


def _read_environ(env: Mapping[str, str], values: Values, origins: Origins) -> None:
    """``ASSAY_<SECTION>_<KEY>`` for the model's keys; other ``ASSAY_*`` variables are someone else's."""
    known = sections()
    for name, value in env.items():
        if not name.upper().startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section in known and key in known[section].model_fields:
            values.setdefault(section, {})[key] = value
            origins[(section, key)] = f"environment variable {name}"


def _suggest(name: str, choices: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(choices)})"


def _describe(error: Any, origins: Origins) -> str:
    """One validation error as ``<file or variable>: [section] key = 'value': why``."""
    section, key = ([str(part) for part in error["loc"]] + ["", ""])[:2]
    where = origins.get((section, key), "configuration")
    return f"{where}: [{section}] {key} = {error['input']!r}: {error['msg']}"
