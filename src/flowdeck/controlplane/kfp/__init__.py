"""The KFP REST API v2beta1, wire-compatible with `kfp.Client` (kfp 2.x): `router` serves it all.

One module per KFP service (healthz, experiments, pipelines and uploads, runs, recurring runs), each
a thin edge over the catalogue repositories (`flowdeck.store.catalog`) and the run controller. The
JSON follows KFP's grpc-gateway conventions (`wire`); list requests follow KFP's filter, sort and
page-token conventions (`listing`).
"""

from fastapi import APIRouter

from flowdeck.controlplane.kfp import experiments, healthz, pipelines, recurring_runs, runs

router = APIRouter()
for _module in (healthz, experiments, pipelines, runs, recurring_runs):
    router.include_router(_module.router)

__all__ = ["router"]
