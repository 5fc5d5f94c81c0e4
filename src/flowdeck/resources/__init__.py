"""Kubeflow-style resources: the object model, the kinds capability packages register, and YAML loading.

    from flowdeck.resources import Kind, registry
    kind = registry().get("pipelineruns")

A resource has `apiVersion`, `kind`, `metadata`, a kind-specific `spec` and a `status` with
Kubernetes-style conditions (`model`). Each capability package describes its kinds (`kinds.Kind`)
and publishes them as `flowdeck.kinds` entry points (`registry`). `loader` turns YAML into validated
resources with one-line errors. The control plane stores them (`service`) and reconciles them with
each kind's hooks (`controller`); those two import the store, so they are not re-exported here.
"""

from flowdeck.resources.kinds import DEFAULT_OUTCOMES, Kind, KindContext, Outcome
from flowdeck.resources.loader import ResourceError, parse_resource, read_documents
from flowdeck.resources.model import DEFAULT_NAMESPACE, Condition, ObjectMeta, Resource, Status
from flowdeck.resources.registry import ENTRY_POINT_GROUP, Registry, UnknownKind, registry

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_OUTCOMES",
    "ENTRY_POINT_GROUP",
    "Condition",
    "Kind",
    "KindContext",
    "ObjectMeta",
    "Outcome",
    "Registry",
    "Resource",
    "ResourceError",
    "Status",
    "UnknownKind",
    "parse_resource",
    "read_documents",
    "registry",
]
