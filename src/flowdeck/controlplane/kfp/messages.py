"""The KFP v2beta1 messages as pydantic models: request bodies, and the response shapes for the API docs.

KFP's server parses JSON with protojson and `DiscardUnknown: false`, so a field it does not know is
an error, and it accepts each field under its proto name (`display_name`) or its JSON name
(`displayName`). These models do the same: `extra="forbid"`, and every field validates under both
spellings. Output-only fields (ids, timestamps, states) are accepted and ignored, as KFP ignores
them, because clients often send back an object they received.

Text that is stored is checked here against its column (`Name`, `Namespace`, ...) and no string may
hold a NUL byte: PostgreSQL refuses both, SQLite does not, and the API must answer the same 400 on
either backend. `Namespace` also maps "default" to the store's "" (`store_namespace`), so the KFP API
and the resource API name the single-user namespace alike.

Responses are built as plain dicts (see `wire`) and returned directly; these models describe them
in the OpenAPI schema, under the snake_case names the server emits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from flowdeck.resources.model import store_namespace
from flowdeck.store.models import ExperimentRow, PipelineVersionRow, RunRow

#: The lengths of the columns these values are stored in (store/models.py).
NAME_LENGTH: int = ExperimentRow.__table__.c.display_name.type.length
NAMESPACE_LENGTH: int = ExperimentRow.__table__.c.namespace.type.length
SERVICE_ACCOUNT_LENGTH: int = RunRow.__table__.c.service_account.type.length
SOURCE_URL_LENGTH: int = PipelineVersionRow.__table__.c.code_source_url.type.length

#: A name or display name (experiments, pipelines, versions, runs, recurring runs).
Name = Annotated[str, StringConstraints(max_length=NAME_LENGTH)]
#: A namespace as the store keeps it: "default" is the single-user namespace, "".
Namespace = Annotated[str, StringConstraints(max_length=NAMESPACE_LENGTH), AfterValidator(store_namespace)]
ServiceAccount = Annotated[str, StringConstraints(max_length=SERVICE_ACCOUNT_LENGTH)]
SourceUrl = Annotated[str, StringConstraints(max_length=SOURCE_URL_LENGTH)]


def _aliases(name: str) -> AliasChoices:
    return AliasChoices(name, to_camel(name))


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=AliasGenerator(validation_alias=_aliases))

    @field_validator("*")
    @classmethod
    def _no_nul_byte(cls, value: Any) -> Any:
        """No string field may hold a NUL byte (PostgreSQL can neither store nor compare one)."""
        if isinstance(value, str) and "\x00" in value:
            raise PydanticCustomError("nul_byte", "must not contain a NUL byte")
        return value


class Status(Message):
    """google.rpc.Status: an error attached to a resource."""

    code: int | None = None
    message: str | None = None
    details: list[dict[str, Any]] | None = None


class Empty(Message):
    """The empty response of deletes and state changes."""


class Error(Message):
    """KFP's error body: `code` is the gRPC status code; `error` and `message` carry the same line."""

    error: str
    code: int
    message: str
    details: list[dict[str, Any]] = []


# -- experiments -------------------------------------------------------------------------------------

class Experiment(Message):
    experiment_id: str | None = Field(None, description="Output only.")
    display_name: Name | None = Field(None, description="Required: unique within the namespace.")
    description: str | None = None
    created_at: datetime | None = Field(None, description="Output only.")
    namespace: Namespace | None = Field(None, description='The namespace; "" (or "default") in a single-user '
                                                          'installation.')
    storage_state: Literal["STORAGE_STATE_UNSPECIFIED", "AVAILABLE", "ARCHIVED"] | None = Field(
        None, description="Output only.")
    last_run_created_at: datetime | None = Field(None, description="Output only.")


class ListExperimentsResponse(Message):
    experiments: list[Experiment] = []
    total_size: int | None = None
    next_page_token: str | None = None


# -- pipelines ---------------------------------------------------------------------------------------

class Url(Message):
    pipeline_url: str | None = None


class Pipeline(Message):
    pipeline_id: str | None = Field(None, description="Output only.")
    display_name: Name | None = None
    name: Name | None = Field(None, description="Required (or display_name): unique within the namespace.")
    description: str | None = None
    created_at: datetime | None = Field(None, description="Output only.")
    namespace: Namespace | None = None
    error: Status | None = None
    tags: dict[str, str] | None = None


class PipelineVersion(Message):
    pipeline_id: str | None = None
    pipeline_version_id: str | None = Field(None, description="Output only.")
    display_name: Name | None = None
    name: Name | None = Field(None, description="Unique within the pipeline.")
    description: str | None = None
    created_at: datetime | None = Field(None, description="Output only.")
    package_url: Url | None = Field(None, description="Where to download the compiled pipeline (http/https).")
    code_source_url: SourceUrl | None = None
    pipeline_spec: dict[str, Any] | None = Field(
        None, description="The compiled PipelineSpec, or {pipeline_spec, platform_spec}; instead of package_url.")
    error: Status | None = None
    tags: dict[str, str] | None = None


class CreatePipelineAndVersionRequest(Message):
    pipeline: Pipeline
    pipeline_version: PipelineVersion


class ListPipelinesResponse(Message):
    pipelines: list[Pipeline] = []
    total_size: int | None = None
    next_page_token: str | None = None


class ListPipelineVersionsResponse(Message):
    pipeline_versions: list[PipelineVersion] = []
    total_size: int | None = None
    next_page_token: str | None = None


# -- runs --------------------------------------------------------------------------------------------

class PipelineVersionReference(Message):
    pipeline_id: str | None = None
    pipeline_version_id: str | None = Field(None, description="The pipeline's newest version when omitted.")


class RuntimeConfig(Message):
    parameters: dict[str, Any] | None = None
    pipeline_root: str | None = Field(None, description="Accepted; flowdeck writes artifacts to its artifact root.")


class RuntimeStatus(Message):
    update_time: datetime | None = None
    state: str | None = None
    error: Status | None = None


class Run(Message):
    experiment_id: str | None = Field(None, description='The experiment; the namespace\'s "Default" when omitted.')
    run_id: str | None = Field(None, description="Output only.")
    display_name: Name | None = None
    storage_state: Literal["STORAGE_STATE_UNSPECIFIED", "AVAILABLE", "ARCHIVED"] | None = None
    description: str | None = None
    pipeline_version_id: str | None = Field(None, description="Deprecated: use pipeline_version_reference.")
    pipeline_spec: dict[str, Any] | None = Field(
        None, description="The compiled PipelineSpec, or {pipeline_spec, platform_spec}.")
    pipeline_version_reference: PipelineVersionReference | None = None
    runtime_config: RuntimeConfig | None = None
    service_account: ServiceAccount | None = None
    created_at: datetime | None = Field(None, description="Output only.")
    scheduled_at: datetime | None = Field(None, description="Output only.")
    finished_at: datetime | None = Field(None, description="Output only.")
    state: str | None = Field(None, description="Output only: a RuntimeState.")
    error: Status | None = Field(None, description="Output only.")
    run_details: dict[str, Any] | None = Field(None, description="Output only: {task_details: [...]}.")
    recurring_run_id: str | None = Field(None, description="Output only.")
    state_history: list[RuntimeStatus] | None = Field(None, description="Output only.")
    plugins_input: dict[str, Any] | None = None
    plugins_output: dict[str, Any] | None = None


class ListRunsResponse(Message):
    runs: list[Run] = []
    total_size: int | None = None
    next_page_token: str | None = None


# -- recurring runs ----------------------------------------------------------------------------------

class CronSchedule(Message):
    start_time: datetime | None = None
    end_time: datetime | None = None
    cron: str | None = Field(None, description='Six fields, seconds first, e.g. "0 0 * * * *".')


class PeriodicSchedule(Message):
    start_time: datetime | None = None
    end_time: datetime | None = None
    interval_second: int | None = Field(None, description="At least 1.")


class Trigger(Message):
    cron_schedule: CronSchedule | None = None
    periodic_schedule: PeriodicSchedule | None = None


class RecurringRun(Message):
    recurring_run_id: str | None = Field(None, description="Output only.")
    display_name: Name | None = Field(None, description="Required.")
    description: str | None = None
    pipeline_version_id: str | None = Field(None, description="Deprecated: use pipeline_version_reference.")
    pipeline_spec: dict[str, Any] | None = None
    pipeline_version_reference: PipelineVersionReference | None = None
    runtime_config: RuntimeConfig | None = None
    service_account: ServiceAccount | None = None
    max_concurrency: int | None = Field(None, description="Runs of this schedule active at once: 1-10.")
    trigger: Trigger | None = Field(None, description="Required: a cron_schedule or a periodic_schedule.")
    mode: Literal["MODE_UNSPECIFIED", "ENABLE", "DISABLE"] | None = None
    created_at: datetime | None = Field(None, description="Output only.")
    updated_at: datetime | None = Field(None, description="Output only.")
    status: Literal["STATUS_UNSPECIFIED", "ENABLED", "DISABLED"] | None = Field(None, description="Output only.")
    error: Status | None = None
    no_catchup: bool | None = Field(None, description="Start only the latest missed run, not every one.")
    namespace: Namespace | None = Field(None, description="Output only: the experiment's namespace.")
    experiment_id: str | None = None
    plugins_input: dict[str, Any] | None = None


class ListRecurringRunsResponse(Message):
    recurringRuns: list[RecurringRun] = []  # KFP's JSON name for this field (not recurring_runs)
    total_size: int | None = None
    next_page_token: str | None = None


class GetHealthzResponse(Message):
    multi_user: bool = False
    pipeline_store: str = "database"
