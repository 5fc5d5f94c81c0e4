"""`Profile`: Kubeflow's profile (kubeflow.org/v1) as a cluster-scoped resource, one per namespace.

    apiVersion: kubeflow.org/v1          # v1beta1 is accepted too
    kind: Profile
    metadata: {name: team-a}             # the namespace the profile governs
    spec:
      owner: {kind: User, name: alice}
      resourceQuotaSpec:
        hard: {cpu: "4", memory: 16Gi, requests.nvidia.com/gpu: "1", pods: "3"}

Applying one takes a cluster admin; its owner may then change it (its owner, its plugins) or delete
it, but only a cluster admin sets or changes `resourceQuotaSpec` (`admin_fields`: an owner must not
raise their own quota; re-applying it unchanged is fine). Its controller makes the owner an `owner`
of the namespace (the binding Kubeflow's `namespaceAdmin` RoleBinding is), hands that binding over
when `spec.owner` changes, and reports `Ready` (or `Failed`, with the reason). The run controller
reads the quota straight from the stored spec (`pipelines.controller.profile_quota`), so a changed
quota applies to the next workload at once. Deleting a profile is refused while it has unfinished
runs; once deleted, every binding of the namespace goes with it, while its runs, pipelines and
experiments stay (for cluster admins to see).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowdeck.profiles.rbac import Principal
from flowdeck.resources.kinds import Kind, KindContext
from flowdeck.resources.model import Resource, store_namespace
from flowdeck.runtime.quotas import QuotaError, limits_from_hard, parse_quantity
from flowdeck.store.bindings import BindingError, Bindings
from flowdeck.store.identity import USER_NAME

API_VERSIONS = ("kubeflow.org/v1", "kubeflow.org/v1beta1")
#: Who hands a profile's owner binding over when its owner changes.
CONTROLLER = Principal(name="system:profile-controller", cluster_admin=True)


class Owner(BaseModel):
    """A Kubernetes RBAC subject, as Kubeflow's profiles name their owner."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["User"] = "User"
    name: str
    apiGroup: str | None = None

    @field_validator("name")
    @classmethod
    def _user_name(cls, value: str) -> str:
        if not USER_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a user name: letters, digits and . _ @ + - (an email address fits)")
        return value

    @property
    def principal(self) -> str:
        return f"user:{self.name}"


class ResourceQuotaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Kubernetes quantities by resource name: cpu, memory, requests.nvidia.com/gpu, pods...
    hard: dict[str, str | int | float] = Field(default_factory=dict)

    @field_validator("hard")
    @classmethod
    def _quantities(cls, value: dict[str, str | int | float]) -> dict[str, str | int | float]:
        for key, quantity in value.items():
            try:
                if parse_quantity(quantity) < 0:
                    raise QuotaError(f"{quantity!r} is negative")
            except QuotaError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return value


class ProfileSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: Owner
    resourceQuotaSpec: ResourceQuotaSpec = Field(default_factory=ResourceQuotaSpec)
    #: Kubeflow's cloud plugins (WorkloadIdentity, AwsIamForServiceAccount): accepted, not applied here.
    plugins: list[dict[str, Any]] | None = None


# -- controller ------------------------------------------------------------------------------------
def reconcile(ctx: KindContext, resource: Resource) -> float | None:
    """Bind the owner (handing the binding over from a previous owner), then say Ready or Failed."""
    spec = ProfileSpec.model_validate(resource.spec)
    name = resource.metadata.name
    profile = store_namespace(name)
    bindings = Bindings(ctx.store)
    owner = spec.owner.principal
    try:
        if bindings.ensure_owner(profile, owner):
            ctx.event(resource, "OwnerBound", f"{spec.owner.name} owns namespace {name}")
        previous = getattr(resource.status, "owner", None)
        if previous and previous != owner:
            held = bindings.get(profile, previous)
            if held is not None and held.role == "owner":
                bindings.revoke(profile, previous, by=CONTROLLER)
                ctx.event(resource, "OwnerChanged", f"{previous.partition(':')[2]} no longer owns namespace {name}")
    except BindingError as exc:
        _fail(ctx, resource, "OwnerNotBound", str(exc))
        return None
    resource.status.owner = owner
    if resource.status.condition("Failed") is not None:
        resource.status.set_condition("Failed", False, "OwnerBound", "the owner is bound")
    resource.status.set_condition("Ready", True, "ProfileReady", _summary(spec))
    return None


def _fail(ctx: KindContext, resource: Resource, reason: str, message: str) -> None:
    if resource.status.condition("Ready") is not None:
        resource.status.set_condition("Ready", False, reason, message)
    if resource.status.set_condition("Failed", True, reason, message):
        ctx.event(resource, reason, message, warning=True)


def _summary(spec: ProfileSpec) -> str:
    """`owned by alice; quota: cpu=4, memory=16Gi (not enforced here: requests.storage)`."""
    text = f"owned by {spec.owner.name}"
    hard = spec.resourceQuotaSpec.hard
    if hard:
        text += "; quota: " + ", ".join(f"{key}={value}" for key, value in hard.items())
        enforced = {key for key in hard if limits_from_hard({key: hard[key]})}
        ignored = sorted(set(hard) - enforced)
        if ignored:
            text += f" (not enforced here: {', '.join(ignored)})"
    if spec.plugins:
        text += "; plugins are not applied here"
    return text


def unfinished_runs(ctx: KindContext, resource: Resource) -> int:
    from sqlalchemy import func, select

    from flowdeck.store.models import RunRow
    from flowdeck.store.store import TERMINAL_RUN_STATES

    query = select(func.count()).select_from(RunRow).where(
        RunRow.namespace == store_namespace(resource.metadata.name), RunRow.state.not_in(TERMINAL_RUN_STATES))
    with ctx.store.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def deletable(ctx: KindContext, resource: Resource) -> str | None:
    """A profile with unfinished runs stays: deleting it would leave them running with nobody allowed to see them."""
    count = unfinished_runs(ctx, resource)
    if count:
        runs = "1 unfinished run" if count == 1 else f"{count} unfinished runs"
        return (f"profile {resource.metadata.name} still has {runs}: terminate them (or wait for them to end), "
                "then delete it")
    return None


def finalize(ctx: KindContext, resource: Resource) -> None:
    """Remove the namespace's bindings (after a last check for runs started since the delete was asked for)."""
    reason = deletable(ctx, resource)
    if reason:
        raise RuntimeError(reason)
    removed = Bindings(ctx.store).remove_profile(store_namespace(resource.metadata.name))
    ctx.event(resource, "BindingsRemoved", f"removed {removed} binding(s) of namespace {resource.metadata.name}")


def describe(ctx: KindContext, resource: Resource) -> list[tuple[str, str]]:
    """The owner, the quota, and who holds which role in the namespace."""
    spec = ProfileSpec.model_validate(resource.spec)
    hard = spec.resourceQuotaSpec.hard
    lines = [("Owner", spec.owner.name),
             ("Quota", ", ".join(f"{key}={value}" for key, value in hard.items()) or "none")]
    held = Bindings(ctx.store).list(profile=store_namespace(resource.metadata.name))
    lines.append(("Contributors", ", ".join(f"{b.principal} ({b.role})" for b in held) or "none"))
    running = unfinished_runs(ctx, resource)
    if running:
        lines.append(("Unfinished runs", str(running)))
    return lines


PROFILE = Kind(
    kind="Profile",
    api_versions=API_VERSIONS,
    plural="profiles",
    short_names=("prof",),
    spec_model=ProfileSpec,
    reconcile=reconcile,
    finalize=finalize,
    describe=describe,
    deletable=deletable,
    cluster_scoped=True,
    governs_namespace=True,
    admin_fields=("resourceQuotaSpec",),
    columns=(("OWNER", "spec.owner.name"),),
)
