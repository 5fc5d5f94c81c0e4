"""Artifact storage: where task inputs and outputs live, named by URI.

Tasks exchange data only through artifact URIs and parameters recorded in the metadata store, never
through a path that only exists on one machine, so the same run can move to Kubernetes with an
`s3://` or `gs://` root. `ArtifactStore` is the one entry point; `resolve_uri` turns a local
`file://` URI into the plain path that KFP's executor expects.
"""

from flowdeck.artifacts.store import ArtifactStore, is_local, resolve_uri

__all__ = ["ArtifactStore", "is_local", "resolve_uri"]
