"""Tables of the metadata store: everything a user would miss after a crash.

Runs, their tasks and task attempts, artifacts and lineage events (which task read or wrote which
artifact), and the execution cache; the KFP catalogue that the control plane serves (experiments,
pipelines and their versions, recurring runs); and the Kubeflow-style resources (any registered kind,
with its spec, status and events). JSON columns hold KFP values exactly as the engine resolved them.

Everything a user owns carries a `namespace` (KFP's namespace, Kubeflow's profile); "" is the
namespace of a single-user installation.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that reads back as an aware UTC datetime on every backend.

    SQLite keeps no offset (it stores the wall-clock text), PostgreSQL answers in the session's time
    zone. Converting to UTC on the way in keeps SQLite's text order chronological; converting on the
    way out makes both backends return the same values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return as_utc(value)


class Base(DeclarativeBase):
    # Deterministic constraint names, the same on every backend, so later migrations can refer to them.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict: JSON, list: JSON}


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_namespace_created_at", "namespace", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(256), index=True)
    display_name: Mapped[str] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(32), index=True)
    pipeline_spec: Mapped[dict] = mapped_column(JSON)
    platform_spec: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    arguments: Mapped[dict] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict] = mapped_column(JSON, default=dict)
    enable_caching: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    engine_host: Mapped[str | None] = mapped_column(String(256), nullable=True)
    engine_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The process executing the run (see store/ownership.py); unlike a pid it is never reused.
    engine_instance: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # -- the KFP API's view of a run --
    namespace: Mapped[str] = mapped_column(String(253), default="", server_default="")
    experiment_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    storage_state: Mapped[str] = mapped_column(String(16), default="AVAILABLE", server_default="AVAILABLE")
    pipeline_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pipeline_version_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    recurring_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    service_account: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: Who executes the run: "embedded" (a `flowdeck run` process) or "server" (the control plane,
    #: which resumes its unfinished runs when it starts again).
    origin: Mapped[str] = mapped_column(String(16), default="embedded", server_default="embedded")
    #: The resource that started the run ("Kind/uid/generation"), so its controller finds it again.
    owner: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)


class TaskRow(Base):
    """One node of a run: a container/importer execution or a DAG (sub-pipeline, condition, loop)."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(256))
    display_name: Mapped[str] = mapped_column(String(512))
    path: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    inputs: Mapped[dict] = mapped_column(JSON, default=dict)
    outputs: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AttemptRow(Base):
    """One try of a task's executor; logs are kept per attempt."""

    __tablename__ = "task_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    log_path: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    name: Mapped[str] = mapped_column(String(256))
    uri: Mapped[str] = mapped_column(String(4096), index=True)
    schema_title: Mapped[str] = mapped_column(String(256))
    schema_version: Mapped[str] = mapped_column(String(32), default="0.0.1")
    artifact_metadata: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventRow(Base):
    """Lineage: task `task_id` read (INPUT) or wrote (OUTPUT) artifact `artifact_id` under `key`."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_artifact", "artifact_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(256))
    position: Mapped[int] = mapped_column(Integer, default=0)


class CacheEntryRow(Base):
    """A finished execution that later tasks with the same fingerprint may reuse."""

    __tablename__ = "cache_entries"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_name: Mapped[str] = mapped_column(String(256), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64))
    outputs: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExperimentRow(Base):
    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("namespace", "display_name", name="uq_experiments_namespace_display_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253), default="")
    display_name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    storage_state: Mapped[str] = mapped_column(String(16), default="AVAILABLE")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_run_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PipelineRow(Base):
    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("namespace", "name", name="uq_pipelines_namespace_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253), default="")
    name: Mapped[str] = mapped_column(String(512))
    display_name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PipelineVersionRow(Base):
    """One uploaded or created version of a pipeline; `pipeline_spec` is the IR (plus platform spec)."""

    __tablename__ = "pipeline_versions"
    __table_args__ = (UniqueConstraint("pipeline_id", "name", name="uq_pipeline_versions_pipeline_id_name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("pipelines.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    display_name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    pipeline_spec: Mapped[dict] = mapped_column(JSON)
    platform_spec: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    code_source_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    tags: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class RecurringRunRow(Base):
    """A schedule that starts runs of a pipeline (cron or fixed interval) while the control plane runs."""

    __tablename__ = "recurring_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253), default="")
    display_name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    experiment_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    pipeline_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pipeline_version_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pipeline_spec: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    platform_spec: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    runtime_config: Mapped[dict] = mapped_column(JSON, default=dict)
    service_account: Mapped[str | None] = mapped_column(String(256), nullable=True)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    #: KFP's Trigger message: {"cron_schedule": {...}} or {"periodic_schedule": {...}}.
    trigger: Mapped[dict] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    no_catchup: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The schedule time of the last run started (the scheduler's bookmark; survives restarts).
    last_scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResourceRow(Base):
    """A Kubeflow-style object of any registered kind (PyTorchJob, InferenceService, ...)."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("kind", "namespace", "name", name="uq_resources_kind_namespace_name"),)

    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_version: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(String(253), default="")
    name: Mapped[str] = mapped_column(String(253))
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    annotations: Mapped[dict] = mapped_column(JSON, default=dict)
    spec: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[dict] = mapped_column(JSON, default=dict)
    #: Bumped when the spec changes (as Kubernetes does); controllers compare it to observedGeneration.
    generation: Mapped[int] = mapped_column(Integer, default=1)
    #: Bumped on every write; a write naming an older one is refused (optimistic concurrency).
    resource_version: Mapped[int] = mapped_column(Integer, default=1)
    deletion_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResourceEventRow(Base):
    """What happened to a resource, for `flowdeck describe` (like Kubernetes Events)."""

    __tablename__ = "resource_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    resource_uid: Mapped[str] = mapped_column(ForeignKey("resources.uid", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # Normal | Warning
    reason: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- identity and access (profiles issue) ----------------------------------------------------------

class UserRow(Base):
    """A person who signs in: with a password (hash only), through OIDC, or named by a trusted proxy."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_users_oidc_issuer_oidc_subject"),)

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(512), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    #: Argon2id PHC string; None for users who sign in only through OIDC or a trusted proxy.
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    oidc_issuer: Mapped[str | None] = mapped_column(String(512), nullable=True)
    oidc_subject: Mapped[str | None] = mapped_column(String(256), nullable=True)
    is_cluster_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BindingRow(Base):
    """A principal's role in a profile (namespace): owner, admin, edit or view."""

    __tablename__ = "bindings"
    __table_args__ = (UniqueConstraint("profile", "principal", name="uq_bindings_profile_principal"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    profile: Mapped[str] = mapped_column(String(63), index=True)
    #: "user:<name>" or "group:<name>".
    principal: Mapped[str] = mapped_column(String(300), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(String(253), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiTokenRow(Base):
    """An API token: only its SHA-256 is stored; the token itself is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: The token's first characters (after its `fdt_` prefix), to find it without a scan.
    lookup: Mapped[str] = mapped_column(String(16), index=True)
    digest: Mapped[str] = mapped_column(String(64))
    #: The user it acts for ("user:<name>"), or the run it belongs to ("run:<id>").
    owner: Mapped[str] = mapped_column(String(300), index=True)
    #: Only this profile, when set; scopes the token carries (intersected with the owner's rights).
    profile: Mapped[str | None] = mapped_column(String(63), nullable=True)
    scopes: Mapped[list] = mapped_column(JSON, default=list)
    note: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginRow(Base):
    """A browser login: the cookie holds a random value, the store only its SHA-256."""

    __tablename__ = "logins"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(253), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The groups the identity provider named at an OIDC login ("group:<name>" bindings apply); None otherwise.
    groups: Mapped[list | None] = mapped_column(JSON, nullable=True)
