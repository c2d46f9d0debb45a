"""One settings object for every command, read from ``KMEVENTS_*`` variables and flags.

Precedence: command-line flags > ``KMEVENTS_*`` environment variables > the chosen
context of the config file (``kmevents/config.py``: ``--context``, ``KMEVENTS_CONTEXT``)
> defaults.
Nested fields use a double underscore: ``KMEVENTS_KAFKA__BOOTSTRAP=...``,
``KMEVENTS_ETCD__MAX_TXN_OPS=128``. Flags set through :func:`load` with
``overrides``.

The defaults describe the local stack that ``kmevents stack up`` starts; a
production deployment sets the bootstrap servers, endpoints and the security
options (TLS for Kafka and etcd, SASL for Kafka, etcd user auth).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from kmevents import config
from kmevents.errors import UsageError

DEFAULT_HOME = Path.home() / ".kmevents"


class KafkaSettings(BaseModel):
    """How to reach Kafka and how the project's topics are laid out."""

    bootstrap: str = Field("127.0.0.1:9092", description="bootstrap servers, comma-separated host:port")
    events_topic: str = Field("kmevents.events", description="the log: every validated cluster event")
    snapshots_topic: str = Field("kmevents.snapshots", description="folded-state snapshots (chunked)")
    deadletter_topic: str = Field("kmevents.deadletter", description="records that could not be decoded")
    alerts_topic: str = Field("kmevents.alerts", description="alerts raised by the monitoring consumers")
    quarantine_topic: str = Field(
        "kmevents.quarantine",
        description="raw source records a parser failed on, keyed stream:seq (kmevents follow/import)",
    )
    partitions: int = Field(6, ge=1, description="partition count of the events topic at creation")
    replication_factor: int = Field(1, ge=1, description="3 in production")
    min_insync_replicas: int = Field(1, ge=1, description="2 in production")
    events_retention_ms: int = Field(-1, description="events topic retention; -1 keeps forever")
    snapshot_max_message_bytes: int = Field(
        8 * 1024 * 1024, description="max.message.bytes of the snapshots topic (chunks stay below)"
    )
    check_crcs: bool = Field(True, description=(
        "check each fetched record batch's CRC-32C as kmevents reads the topics, the workers' group "
        "consumers included (`verify --full` reads without: the hash chain and its fold check every "
        "byte it reads; ~2.2 GB/s of one core)"))
    # Client security (all optional; PLAINTEXT on the local stack).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None


class EtcdSettings(BaseModel):
    """How to reach etcd, where kmevents keeps state, and etcd's request limits."""

    endpoint: str = Field("http://127.0.0.1:2379", description="client URL of one etcd member")
    prefix: str = Field("/kmevents/v1", description="root of every key kmevents writes")
    max_txn_ops: int = Field(1024, ge=2, description=(
        "etcd --max-txn-ops (operations per transaction): the stack starts etcd with it; workers "
        "probe the server and fall back to what it accepts (etcd's own default is 128)"))
    max_request_bytes: int = Field(
        1536 * 1024, ge=1024, description="etcd --max-request-bytes (bytes per request)"
    )
    timeout_seconds: float = Field(10.0, gt=0)
    # Client security.
    ca_cert: Path | None = None
    cert_cert: Path | None = None
    cert_key: Path | None = None
    username: str | None = None
    password: SecretStr | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint_has_scheme(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("etcd endpoint needs a scheme, e.g. http://127.0.0.1:2379")
        return v.rstrip("/")

    @property
    def host(self) -> str:
        return self.endpoint.split("://", 1)[1].rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])


class StackSettings(BaseModel):
    """The local stack that ``kmevents stack up`` runs (development and tests)."""

    home: Path = Field(DEFAULT_HOME / "stack", description="data, logs and PID files live here")
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    etcd_port: int = Field(2379, ge=1, le=65535)
    etcd_peer_port: int = Field(2380, ge=1, le=65535)
    kafka_home: Path | None = Field(None, description="an existing Kafka install to use instead of Maven jars")
    etcd_bin: Path | None = Field(None, description="the etcd binary to run (default: etcd on PATH)")
    jar_cache: Path = Field(DEFAULT_HOME / "kafka-jars", description="Maven-resolved Kafka jars")
    kafka_heap: str = Field("1g", description="Kafka JVM heap (-Xmx)")
    etcd_quota_bytes: int = Field(4 * 1024**3, description="etcd --quota-backend-bytes")
    etcd_auto_compaction_retention: str = Field(
        "10m", description="etcd periodic auto-compaction window (keeps history bounded)"
    )
    start_timeout_seconds: float = Field(60.0, gt=0)


class ApiToken(BaseModel):
    """A bearer token of the HTTP API and what it may do."""

    token: SecretStr
    name: str = Field("", description="who holds it (shown in logs, never the token)")
    scopes: list[Literal["read", "ingest"]] = ["read"]  # pydantic copies a mutable default per instance
    clusters: list[str] | None = Field(None, description="clusters it may see; None = all")
    namespaces: list[str] | None = Field(None, description="namespaces it may see; None = all")


class ApiSettings(BaseModel):
    """The HTTP API (``kmevents api``): where it listens and who may call it."""

    host: str = Field("127.0.0.1", description="bind address (loopback by default)")
    port: int = Field(8080, ge=0, le=65535)
    tokens: list[ApiToken] = Field(default_factory=list, description="KMEVENTS_API__TOKENS as JSON")
    max_body_bytes: int = Field(16 * 1024 * 1024, description="largest accepted request body")
    max_events_per_request: int = Field(50_000)
    max_in_flight_events: int = Field(200_000, ge=0, description="above this, ingest answers 429")
    cors_origins: list[str] = Field(default_factory=list, description="CORS is off when empty")
    max_query_bytes: int = Field(8192, ge=256, description="longest accepted query string (414 above)")
    page_limit_max: int = Field(1000, ge=1, description="largest ?limit= of a list")
    page_limit_default: int = Field(100, ge=1, description="?limit= when none is given")
    ready_max_lag: int = Field(10_000, ge=0, description="/readyz fails when a partition's processor lag is above")
    replay_cache_entries: int = Field(4, ge=0, description="states kept for repeated ?at=/?known_at=/?offset= reads")
    replay_state_cache_entries: int = Field(
        16, ge=0, description="read-only states (loaded snapshots, earlier reads) a point-in-time read may start "
                             "from instead of a snapshot; each up to ~3x its snapshot's bytes in memory")
    replay_state_every: int = Field(
        4000, ge=1, description="a read folding more records than this from a held state also holds the "
                                "states in between, every this many offsets")
    replay_record_cache_mib: int = Field(
        256, ge=0, description="raw event records kept for point-in-time reads (MiB, 0: none)")
    history_index_cache_mib: int = Field(
        256, ge=0, description="touched-entity indexes the history route keeps between requests (MiB of block "
                               "hashes, ~25 bytes an event of the log, all clusters together; 0: none, each "
                               "history reads the whole index)")
    metrics_cache_seconds: float = Field(5.0, ge=0, description="/metrics reuses a scrape this long")
    verify_interval_seconds: float = Field(
        0.0, ge=0, description="run `verify` this often in the API for the drift/chain gauges (0: never)")
    replay_cache_bytes: int = Field(
        512 * 1024 * 1024, ge=0, description="bytes (estimated, an upper bound) of the replayed states the API "
                                             "keeps: held states and repeated reads together (0: none)")
    max_concurrent_replays: int = Field(
        2, ge=1, description="point-in-time reads, histories and searches replaying at once (per kind: cold "
                             "from a snapshot, warm from a held state)")
    max_queued_replays: int = Field(
        8, ge=0, description="replays waiting for a slot; beyond, 429 with Retry-After")
    replay_queue_seconds: float = Field(
        30.0, gt=0, description="a replay waiting longer than this for a slot gets 503 with Retry-After")
    metrics_entity_labels: bool = Field(
        False, description="/metrics (open, no token) labels series with cluster, agent, role, RC and service "
                           "names; off: totals only")


class MonitorSettings(BaseModel):
    """Thresholds of the monitoring rules (``kmevents monitor``; kmevents/monitor/rules.py)."""

    window_seconds: float = Field(60.0, gt=0, description="rate window, in SOURCE time (occurred_at)")
    task_lost_per_agent: int = Field(5, ge=1, description="TASK_LOST/UNREACHABLE per agent per window")
    evictions_per_window: int = Field(10, ge=1, description="pod evictions per cluster per window")
    agent_flaps_per_window: int = Field(3, ge=1, description="agent removed/re-registered per window")
    offer_declines_per_window: int = Field(20, ge=1, description="declines per window that count as starvation")
    pending_pod_seconds: float = Field(60.0, ge=0, description="a pod Pending this long counts as starved")
    rc_below_seconds: float = Field(60.0, ge=0, description="an RC below desired this long fires")
    service_mismatch_seconds: float = Field(30.0, ge=0, description="endpoints missing/differing this long fires")
    kube_system_components: list[str] = Field(default_factory=lambda: ["kube-dns", "kube-ui"])
    processor_lag: int = Field(10_000, ge=0, description="records behind per partition")
    silent_seconds: float = Field(300.0, gt=0, description="a source stream silent this long (log time)")
    backlog_seconds: float = Field(120.0, ge=0,
                                   description="events recorded longer ago than this mean the consumer catches up")
    backlog_records: int = Field(5_000, ge=0, description="records behind the high watermark that mean catching up")
    alertmanager_url: str | None = Field(None, description="e.g. http://127.0.0.1:9093 (POST /api/v2/alerts)")
    runbook_base: str = Field("https://runbooks.example.invalid/kmevents/",
                              description="runbook links are <base><rule>")


class IngestSettings(BaseModel):
    """Checks ingest makes beyond the contract (``kmevents ingest``, ``validate``, ``POST /v1/events``)."""

    max_future_skew_seconds: float = Field(
        300.0, ge=0, description="events whose occurred_at is further ahead of the ingest clock than this are "
                                 "refused: one far-future time would move retention's clock for good")


class RedactSettings(BaseModel):
    """What ingest redacts beyond its defaults (``kmevents/ingest/redact_rules.py``); lists as JSON."""

    extra_key_patterns: list[str] = Field(default_factory=list, description=(
        "more words naming a secret in a mapping key, case and separators ignored "
        '(["db-pass"] matches DB_PASS, dbPass, mydbpassword)'))
    extra_value_patterns: list[str] = Field(default_factory=list, description=(
        "regular expressions of secrets in free text; the group named 'secret' is masked, "
        "else the whole match"))
    allow_keys: list[str] = Field(default_factory=list, description=(
        "mapping keys never treated as secret, case and separators ignored"))

    @field_validator("extra_value_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for p in patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"{p!r} is not a regular expression ({exc}); "
                                 "fix KMEVENTS_REDACT__EXTRA_VALUE_PATTERNS") from None
        return patterns


class Settings(BaseSettings):
    """Everything a kmevents process needs to know about its surroundings."""

    model_config = SettingsConfigDict(
        env_prefix="KMEVENTS_", env_nested_delimiter="__", extra="ignore"
    )

    cluster: str = Field("demo", description="default cluster name for commands that take --cluster")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    etcd: EtcdSettings = Field(default_factory=EtcdSettings)
    stack: StackSettings = Field(default_factory=StackSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    redact: RedactSettings = Field(default_factory=RedactSettings)
    log_format: Literal["text", "json"] = "text"
    _derived: set[str] = PrivateAttr(default_factory=set)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (init) > environment > the config file's chosen context > defaults."""
        ctx = config.context_source(settings_cls)
        return (init_settings, env_settings, dotenv_settings, *((ctx,) if ctx is not None else ()),
                file_secret_settings)

    def model_post_init(self, __context: Any) -> None:
        # Clients follow the local stack's ports unless an address was given
        # explicitly: KMEVENTS_STACK__KAFKA_PORT=19092 alone is enough.
        if "bootstrap" not in self.kafka.model_fields_set:
            self.kafka.bootstrap = f"127.0.0.1:{self.stack.kafka_port}"
            self._derived.add("kafka.bootstrap")
        if "endpoint" not in self.etcd.model_fields_set:
            self.etcd.endpoint = f"http://127.0.0.1:{self.stack.etcd_port}"
            self._derived.add("etcd.endpoint")


def load(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment, with ``overrides`` (dotted keys, from flags) on top.

    ``load({"kafka.bootstrap": "127.0.0.1:19092"})`` sets one nested field.
    ``None`` values in ``overrides`` are ignored (an unset flag). A value that does not
    validate raises UsageError naming where it came from (:func:`refusal`)."""
    try:
        base = Settings()
    except ValidationError as exc:
        raise refusal(exc, None) from None
    if not overrides:
        return base
    data = base.model_dump()
    for dotted in base._derived:  # let them be derived again from the overridden ports
        section, leaf = dotted.split(".")
        data[section].pop(leaf)
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise refusal(exc, overrides) from None


def child_env(s: Settings, *, cluster: bool = False) -> dict[str, str]:
    """The ``KMEVENTS_*`` variables that point a ``kmevents`` child process at ``s``'s Kafka and etcd,
    its topics and its etcd prefix (and, with ``cluster``, its default cluster): to put over the
    parent's environment, ``{**os.environ, **child_env(s)}`` (tests, benches, a supervisor's wrapper)."""
    k = s.kafka
    env = {"KMEVENTS_KAFKA__BOOTSTRAP": k.bootstrap, "KMEVENTS_ETCD__ENDPOINT": s.etcd.endpoint,
           "KMEVENTS_KAFKA__EVENTS_TOPIC": k.events_topic, "KMEVENTS_KAFKA__SNAPSHOTS_TOPIC": k.snapshots_topic,
           "KMEVENTS_KAFKA__DEADLETTER_TOPIC": k.deadletter_topic, "KMEVENTS_KAFKA__ALERTS_TOPIC": k.alerts_topic,
           "KMEVENTS_KAFKA__QUARANTINE_TOPIC": k.quarantine_topic, "KMEVENTS_ETCD__PREFIX": s.etcd.prefix}
    if cluster:
        env["KMEVENTS_CLUSTER"] = s.cluster
    return env


def refusal(exc: ValidationError, overrides: dict[str, Any] | None) -> UsageError:
    """A settings validation error as one actionable line: each bad setting by the name it was
    given as (the ``KMEVENTS_*`` variable set, the flag, else the config file's context) and
    why, without its value (a setting may be a secret)."""
    env = {k.upper(): k for k in os.environ}
    parts = []
    for err in exc.errors()[:3]:
        dotted = ".".join(str(x) for x in err["loc"])
        var = "KMEVENTS_" + "__".join(str(x) for x in err["loc"]).upper()
        if var in env:
            where = env[var]
        elif overrides and overrides.get(dotted) is not None:
            where = f"{dotted} (from a flag)"
        elif (path := config.config_path()).exists():
            where = f"{dotted} (the config file's context, {path})"
        else:  # (e.g. inside a KMEVENTS_<SECTION> variable holding JSON)
            where = dotted
        why = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {why}")
    more = len(exc.errors()) - len(parts)
    return UsageError("bad setting " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else ""),
                      hint="fix or unset it: README.md's \"Settings\" lists each setting, its variable and default")
