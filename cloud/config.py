"""The cloud's configuration: a TOML file and/or command-line flags, validated at start-up.

A bad file stops the cloud with a message naming the key and what was expected."""

from __future__ import annotations

import hashlib
import os
import secrets
import tomllib
from datetime import timedelta
from urllib.parse import urlparse
from enum import Enum
from pathlib import Path
from typing import Literal, Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cloud.care.privacy import default_key_file
from contracts.errors import describe_validation_error
from contracts.ids import FacilityId
from wire.mqtt_client import parse_broker_url, parse_broker_urls


class Role(str, Enum):
    POLICE = "police"
    HEALTH = "health"
    SUPERVISOR = "supervisor"
    FACILITY = "facility"
    ADMIN = "admin"
    REGISTRAR = "registrar"  # the registration body's system (登记机关), pushing registrations


# Roles whose tokens may be bound to a jurisdiction (a facility token is bound to its facility).
JURISDICTION_ROLES = frozenset({Role.POLICE, Role.HEALTH, Role.SUPERVISOR})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenEntry(_Strict):
    token: Optional[str] = Field(default=None, min_length=16,
                                 description="bearer token in the clear (at least 16 characters); prefer token_sha256")
    token_sha256: Optional[str] = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                        description="SHA-256 of the bearer token, hex: the file never holds the token")
    user: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Role
    facility_id: Optional[FacilityId] = Field(default=None, description="required for, and only for, role facility")
    jurisdiction: Optional[str] = Field(
        default=None, pattern=r"^[^/\x00-\x1f]{1,32}(/[^/\x00-\x1f]{1,32}){0,2}$",
        description="province[/city[/district]] a police, health or supervisor token sees; none: everywhere")
    expires_at: Optional[AwareDatetime] = Field(default=None, description="refused from this time on")

    @model_validator(mode="after")
    def _facility_scope(self) -> "TokenEntry":
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError(f"token of user {self.user!r}: give exactly one of token and token_sha256")
        if (self.role is Role.FACILITY) != (self.facility_id is not None):
            raise ValueError(f"token of user {self.user!r}: facility_id is required for, and only for, role facility")
        if self.jurisdiction is not None and self.role not in JURISDICTION_ROLES:
            raise ValueError(f"token of user {self.user!r}: only police, health and supervisor tokens take a "
                             "jurisdiction")
        return self

    @property
    def sha256(self) -> str:
        return self.token_sha256 or hashlib.sha256(self.token.encode()).hexdigest()


class CloudConfig(_Strict):
    broker_url: str = Field(default="mqtt://127.0.0.1:1883", description="uplink broker, mqtt://[user:pass@]host[:port]")
    db_url: str = Field(default="sqlite:///var/cloud.db", description="sqlite:///FILE or postgresql+psycopg://...")
    host: str = Field(default="127.0.0.1", description="HTTP listen address")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port; 0 picks a free one")
    shared_subscription: bool = Field(
        default=False, description="MQTT v5 $share/ingest/... so several cloud workers split the load (Mosquitto, EMQX); "
                                   "off for the embedded amqtt broker, which speaks 3.1.1 only")
    client_id: str = Field(default="careguard-cloud-ingest", pattern=r"^[A-Za-z0-9_-]{1,64}$",
                           description="ingest MQTT client id; stable, so the broker keeps the session across restarts")
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0, description="MQTT v5 session expiry (shared mode)")
    batch_max: int = Field(default=500, ge=1, le=50_000, description="most envelopes written in one transaction")
    tokens: list[TokenEntry] = Field(default_factory=list, description="API bearer tokens; empty: one generated police token")
    ingest_amqp_url: Optional[str] = Field(
        default=None, description="a RabbitMQ cluster's nodes, amqp://user:pass@host1:5672,host2:5672/vhost: ingest "
                                  "consumes its replicated queue (cg.ingest, fed by the MQTT plugin) instead of an "
                                  "MQTT subscription; broker_url then lists the nodes' MQTT listeners for the downlink")
    ingest_workers: int = Field(
        default=1, ge=1, le=64, description="ingest processes sharing $share/ingest/... (client ids `{client_id}-{n}`); "
                                            "more than 1 needs shared_subscription")
    telemetry_url: Optional[str] = Field(
        default=None, description="InfluxDB v2 write API base URL (InfluxDB, VictoriaMetrics: http://host:8428); "
                                  "none: telemetry goes to the relational store")
    telemetry_query_url: Optional[str] = Field(
        default=None, description="Prometheus query API base URL the health runner and pages read telemetry from; "
                                  "none: telemetry_url (VictoriaMetrics serves both)")
    telemetry_token: str = Field(default="", description="InfluxDB API token (VictoriaMetrics ignores it)")
    telemetry_org: str = Field(default="careguard", description="InfluxDB organisation")
    telemetry_bucket: str = Field(default="careguard", description="InfluxDB bucket")
    # A gateway sends one telemetry batch a second (edge TELEMETRY_FLUSH_S; a second one only past
    # 5,000 points): the defaults are ten times that, and an hour of its batches at once (its backlog
    # after an hour away, or the cloud's after an hour down, passes whole).
    facility_rate_per_s: float = Field(
        default=10.0, gt=0, description="per facility, all ingest workers together: telemetry envelopes a second "
                                        "beyond which a flooding gateway is throttled (its excess acknowledged and "
                                        "counted, not stored); a gateway sends one a second; nothing else is throttled")
    facility_burst: int = Field(default=3600, ge=1, description="per facility, all ingest workers together: telemetry "
                                                                "envelopes a facility may send at once before the rate "
                                                                "applies (a gateway's backlog after an hour away)")
    gateway_offline_s: float = Field(default=25.0, gt=0, le=3600,
                                     description="silence after which a gateway_offline alarm is raised: 2.5 of the "
                                                 "edge's 10 s heartbeats, so the alarm comes within this plus "
                                                 "gateway_check_s of the last message (30 s at most)")
    escalation_after_s: float = Field(default=60.0, gt=0, description="an unacknowledged panic escalates to supervisors")
    escalation_renotify_s: float = Field(default=60.0, gt=0, description="and is notified again this often")
    escalation_max_notifications: int = Field(default=5, ge=1)
    background_work: Literal["thread", "process", "off"] = Field(
        default="thread", description="the compliance refresher and the health runner: threads of this process, a "
                                      "process of their own (thousands of facilities), or off (another host runs them)")
    health_check_s: float = Field(default=60.0, gt=0, le=3600,
                                  description="how often room climate and symptom clusters are evaluated")
    compliance_refresh_s: float = Field(default=2.0, gt=0, le=60,
                                        description="how often out-of-date compliance snapshots are evaluated again")
    compliance_full_every_s: float = Field(default=3600.0, gt=0,
                                           description="every snapshot evaluated again this often, whatever changed")
    envelope_retention_days: Optional[float] = Field(
        default=None, ge=0.25, le=3650,
        description="envelopes of the high-rate kinds (heartbeat, camera.health, telemetry.batch) are deleted this "
                    "long after their time, each facility's newest of a kind kept, and ingest refuses heartbeats and "
                    "camera health older than this (a redelivery of a pruned one would pass for the newest state); "
                    "alarms, events and reports are never pruned. None (the default, for a single facility or a "
                    "trial): keep everything; a city or province sets it (deploy/cloud.*.toml: 1), 10,000 gateways "
                    "sending about 200 million rows (200 GB) a day")
    envelope_prune_s: float = Field(default=300.0, gt=0, le=86400, description="how often envelopes are pruned")
    gateway_check_s: float = Field(default=1.0, gt=0, le=60, description="how often gateways are checked")
    tokens_file: Optional[str] = Field(default=None, description="TOML file of [[tokens]], read again on SIGHUP and "
                                                                 "POST /api/tokens/reload")
    data_key_file: Optional[str] = Field(
        default=None, description="the key of children's data and snapshots (created 0600 if missing); none: "
                                  "CAREGUARD_DATA_KEY, else CAREGUARD_DATA_KEY_FILE, else ~/.config/careguard/data.key "
                                  "(outside the data folder)")
    snapshot_retention_days: Optional[float] = Field(
        default=None, gt=0, le=3650, description="how long camera snapshots are kept; none: the footage period of "
                                                 "each facility's jurisdiction (its compliance profile)")
    gateway_ca_dir: Optional[str] = Field(
        default=None, description="folder of the CA that issues gateway client certificates (created on first use; "
                                  "keep it off the broker's machine); none: no certificates from this cloud")
    tls_cert: Optional[str] = Field(default=None, description="PEM certificate (chain): serve HTTPS, with HSTS")
    tls_key: Optional[str] = Field(default=None, description="PEM private key of tls_cert")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024,
                                description="largest request body; larger ones are refused before they are read")

    signing_key_path: Path = Field(
        default=Path("keys/cloud-signing.key"),
        description="Ed25519 key that signs every down command; made (mode 0600) at first start if absent. Keep it "
                    "outside the data folder; gateways pin its public key ([uplink] cloud_public_key)")
    clip_retention_days: int = Field(default=90, ge=1, le=3650,
                                     description="alarm clips are deleted this long after their alarm (audited)")

    @field_validator("broker_url", "db_url", "telemetry_token", mode="before")
    @classmethod
    def _secret(cls, v, info):
        return resolve_secret(v, info.field_name)

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, v: str) -> str:
        parse_broker_url(v)
        return v

    @field_validator("telemetry_url", "telemetry_query_url")
    @classmethod
    def _telemetry_url(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v or None

    @field_validator("ingest_amqp_url")
    @classmethod
    def _amqp_url(cls, v: Optional[str]) -> Optional[str]:
        if v:
            u = urlparse(v)
            parse_broker_urls(f"{u.scheme}://{u.netloc}", schemes=("amqp",), default_port=5672)
        return v or None

    @model_validator(mode="after")
    def _tls_pair(self) -> "CloudConfig":
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @model_validator(mode="after")
    def _workers_need_shared(self) -> "CloudConfig":
        if self.ingest_workers > 1 and not (self.shared_subscription or self.ingest_amqp_url):
            raise ValueError("ingest_workers > 1 needs shared_subscription = true (the workers split one "
                             "$share/ingest subscription) or ingest_amqp_url (they compete for its queue)")
        return self

    def envelope_retention(self) -> Optional[timedelta]:
        return timedelta(days=self.envelope_retention_days) if self.envelope_retention_days is not None else None

    @field_validator("tokens")
    @classmethod
    def _unique_tokens(cls, v: list[TokenEntry]) -> list[TokenEntry]:
        if len({t.sha256 for t in v}) != len(v):
            raise ValueError("the same token is listed twice")
        return v


class ConfigError(ValueError):
    pass


def resolve_secret(value, key: str):
    """A setting that may hold a secret, given as is, as `env:NAME` (an environment variable) or
    as `file:PATH` (the file's content, trimmed): the configuration file then holds no password."""
    if not isinstance(value, str):
        return value
    if value.startswith("env:"):
        name = value[4:]
        if name not in os.environ:
            raise ValueError(f"{key}: environment variable {name!r} is not set")
        return os.environ[name]
    if value.startswith("file:"):
        try:
            return Path(value[5:]).read_text().strip()
        except OSError as exc:
            raise ValueError(f"{key}: cannot read {value[5:]!r}: {exc.strerror}") from None
    return value


def _load_toml(path: str | Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_tokens(path: str | Path) -> list[TokenEntry]:
    """A tokens file holds `[[tokens]]` tables with token, user and role."""
    raw = _load_toml(path)
    try:
        return CloudConfig.model_validate({"tokens": raw.get("tokens", [])}).tokens
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc)}") from None


def load_config(path: Optional[str | Path] = None, **overrides) -> CloudConfig:
    """The file's settings (if any), then `overrides` that are not None on top."""
    raw = _load_toml(path) if path else {}
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return CloudConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path or 'cloud config'}: {describe_validation_error(exc)}") from None


def data_key_file(config: CloudConfig) -> Path:
    """Where the data key lives (cloud.care.privacy reads CAREGUARD_DATA_KEY first)."""
    return Path(config.data_key_file) if config.data_key_file else default_key_file()


def with_generated_police_token(config: CloudConfig) -> tuple[CloudConfig, Optional[str]]:
    """Embedded default: with no tokens configured, mint one for a `police` user so the page can be tried."""
    if config.tokens:
        return config, None
    token = secrets.token_urlsafe(24)
    return config.model_copy(update={"tokens": [TokenEntry(token=token, user="police", role=Role.POLICE)]}), token
