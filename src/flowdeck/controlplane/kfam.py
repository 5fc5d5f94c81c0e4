"""Kubeflow's access-management API (KFAM), so the tools that drive Kubeflow's contributors work here.

    GET    /kfam/v1/bindings?user=&namespace=&role=   {"bindings": [Binding, ...]}
    POST   /kfam/v1/bindings                          Binding: add a contributor (or change their role)
    DELETE /kfam/v1/bindings                          Binding: remove a contributor
    GET    /kfam/v1/role/clusteradmin?user=NAME       true | false (about others: cluster admins only)

    Binding = {"user": {"kind": "User", "name": "alice"}, "referredNamespace": "team-a",
               "RoleRef": {"kind": "ClusterRole", "name": "admin" | "edit" | "view"}}

As in Kubeflow, a role is named `admin`, `edit` or `view` (`kubeflow-edit` and the like are accepted
too), and a profile's owner is listed as `admin`; `flowdeckRole` says which role flowdeck holds
(`owner` included). Unlike Kubeflow, a user holds one role per namespace: POSTing another role
replaces it. Changes follow `store.bindings`: the caller must manage the namespace and may grant
or remove roles only up to their own; the last owner stays. Lists show only the bindings of
namespaces the caller may read. A removed contributor loses access at once, tokens included. Whether
a user is a cluster admin is answered to that user and to cluster admins; anyone else gets a 403,
whether the user exists or not (so the answer tells nothing about other accounts).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowdeck.controlplane.app import Ctx
from flowdeck.controlplane.auth import Authenticated, Scoped
from flowdeck.controlplane.errors import ApiError, DomainErrorRoute
from flowdeck.resources.loader import describe_error
from flowdeck.resources.model import api_namespace, check_namespace, store_namespace
from flowdeck.store.bindings import Binding, BindingDenied, BindingError, BindingNotFound, Bindings


class KfamRoute(DomainErrorRoute):
    statuses = ((BindingDenied, 403), (BindingNotFound, 404), (BindingError, 400))


router = APIRouter(prefix="/kfam/v1", route_class=KfamRoute, tags=["kfam"])

#: KFAM's role names (and the ClusterRoles they stand for) -> flowdeck's roles.
_ROLES = {"admin": "admin", "edit": "edit", "view": "view",
          "kubeflow-admin": "admin", "kubeflow-edit": "edit", "kubeflow-view": "view"}


class Subject(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["User", "Group"] = "User"
    name: str = Field(min_length=1, max_length=253)

    @property
    def principal(self) -> str:
        return f"{self.kind.lower()}:{self.name}"


class RoleReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: str = "ClusterRole"
    name: str
    apiGroup: str | None = None

    @property
    def role(self) -> str:
        role = _ROLES.get(self.name)
        if role is None:
            raise BindingError(f"RoleRef.name: {self.name!r} is not a role; use admin, edit or view")
        return role


class KfamBinding(BaseModel):
    model_config = ConfigDict(extra="ignore")

    user: Subject
    referredNamespace: str
    #: KFAM spells it `RoleRef`; `roleRef` (Kubernetes' spelling) is accepted too. Optional for DELETE.
    RoleRef: RoleReference | None = None

    @property
    def profile(self) -> str:
        try:
            return store_namespace(check_namespace(self.referredNamespace))
        except ValueError as exc:
            raise BindingError(f"referredNamespace: {exc}") from None


def _body(document: dict[str, Any]) -> KfamBinding:
    """The request's binding (`roleRef` read as `RoleRef`)."""
    if "RoleRef" not in document and "roleRef" in document:
        document = {**document, "RoleRef": document["roleRef"]}
    try:
        return KfamBinding.model_validate(document)
    except ValidationError as exc:
        raise BindingError(describe_error(exc, KfamBinding)) from None


def binding_view(binding: Binding) -> dict[str, Any]:
    kind, _, name = binding.principal.partition(":")
    return {"user": {"kind": kind.title(), "name": name}, "referredNamespace": api_namespace(binding.profile),
            "RoleRef": {"kind": "ClusterRole", "name": "admin" if binding.role == "owner" else binding.role},
            "flowdeckRole": binding.role}


@router.get("/bindings", summary="Who holds which role, in the namespaces the caller may read")
def list_bindings(ctx: Ctx, access: Scoped,
                  user: Annotated[str | None, Query(description="A user name.")] = None,
                  namespace: Annotated[str | None, Query(description="A namespace.")] = None,
                  role: Annotated[str | None, Query(description="admin, edit or view.")] = None
                  ) -> dict[str, Any]:
    visible = access.visible("read")
    profile = None
    if namespace:
        try:
            profile = store_namespace(check_namespace(namespace))
        except ValueError as exc:
            raise BindingError(f"namespace: {exc}") from None
    wanted = None if not role else RoleReference(name=role).role
    found = Bindings(ctx.store).list(profile=profile, principal=f"user:{user}" if user else None)
    shown = [b for b in found if (visible is None or b.profile in visible)
             and (wanted is None or ("admin" if b.role == "owner" else b.role) == wanted)]
    return {"bindings": [binding_view(b) for b in shown]}


@router.post("/bindings", summary="Give a user a role in a namespace (profile admins and owners)")
def create_binding(ctx: Ctx, access: Scoped, document: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    binding = _body(document)
    if binding.RoleRef is None:
        raise BindingError("RoleRef: required (admin, edit or view)")
    role = binding.RoleRef.role
    profile = binding.profile
    access.require("manage", profile)
    granted = Bindings(ctx.store).grant(profile, binding.user.principal, role, by=access.principal)
    return binding_view(granted)


@router.delete("/bindings", summary="Take a user's role in a namespace away (profile admins and owners)")
def delete_binding(ctx: Ctx, access: Scoped, document: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    binding = _body(document)
    profile = binding.profile
    access.require("manage", profile)
    bindings = Bindings(ctx.store)
    held = bindings.get(profile, binding.user.principal)
    if held is not None and binding.RoleRef is not None:
        named = binding.RoleRef.role
        if named != ("admin" if held.role == "owner" else held.role):
            raise BindingNotFound(f"{binding.user.principal} has the role {held.role}, not {named}, in namespace "
                                  f"{binding.referredNamespace!r}")
    removed = bindings.revoke(profile, binding.user.principal, by=access.principal)
    return binding_view(removed)


@router.get("/role/clusteradmin", summary="Whether a user is a cluster admin (another user: cluster admins only)")
def is_cluster_admin(ctx: Ctx, access: Authenticated,
                     user: Annotated[str, Query(min_length=1, description="A user name.")]) -> bool:
    if f"user:{user}" == access.principal.name:
        return access.principal.cluster_admin
    if not access.principal.full_cluster_admin:
        raise ApiError(403, f"{access.principal.name} may ask only whether they themselves are a cluster admin "
                            f"(user={access.principal.name.partition(':')[2] or access.principal.name})")
    row = ctx.identity.get_user(user)
    return bool(row is not None and row.is_cluster_admin and not row.disabled)
