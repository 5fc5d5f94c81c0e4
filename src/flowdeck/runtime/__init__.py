"""Runtimes: where workloads run (local process groups today, Kubernetes Pods later)."""

from flowdeck.runtime.base import ExitCallback, Runtime, Workload, WorkloadHandle
from flowdeck.runtime.local import LocalRuntime

__all__ = ["ExitCallback", "LocalRuntime", "Runtime", "Workload", "WorkloadHandle"]
