"""`Widget`: a kind that exists only in tests, to drive the generic resource machinery.

Its controller takes `spec.steps` reconciles to reach `spec.outcome` (Succeeded, Failed, Ready, or
Never), counting them in `status.step`; its logs say what it is; deleting it runs a finalizer that
fails until the file `spec.holdDeletionUntil` names exists. The CLI tests publish it as a real
`flowdeck.kinds` entry point (`install_plugin`), so the server and the CLI find it as they would a
capability package's kind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowdeck.resources import Kind, KindContext, Resource

API_VERSION = "test.flowdeck.dev/v1"


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: int = 1

    @field_validator("replicas")
    @classmethod
    def _one(cls, value: int) -> int:
        if value != 1:
            raise ValueError("must be 1")
        return value


class WidgetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1)
    color: Literal["red", "green", "blue"] = "red"
    outcome: Literal["Succeeded", "Failed", "Ready", "Never"] = "Succeeded"
    steps: int = Field(default=1, ge=1)
    parts: dict[str, Part] = Field(default_factory=dict)
    #: Deleting the widget waits until this file exists (as a real finalizer waits for a process to stop).
    holdDeletionUntil: str | None = None


def reconcile(ctx: KindContext, resource: Resource) -> float | None:
    spec = WidgetSpec.model_validate(resource.spec)
    status = resource.status
    step = getattr(status, "step", 0) + 1
    status.step = step
    if step == 1:
        ctx.event(resource, "Started", f"building a {spec.color} widget of size {spec.size}")
    if spec.outcome == "Never" or step < spec.steps:
        status.set_condition("Running", True, "Building", f"step {step} of {spec.steps}")
        return 0.05
    status.set_condition("Running", False, "Done", f"done after {step} steps")
    message = "the widget broke" if spec.outcome == "Failed" else f"{spec.outcome.lower()} after {step} steps"
    status.set_condition(spec.outcome, True, f"Widget{spec.outcome}", message)
    ctx.event(resource, f"Widget{spec.outcome}", message, warning=spec.outcome == "Failed")
    return None


def finalize(ctx: KindContext, resource: Resource) -> None:
    hold = resource.spec.get("holdDeletionUntil")
    if hold and not Path(hold).exists():
        raise RuntimeError(f"the widget is held until {hold} exists")


def logs(ctx: KindContext, resource: Resource):
    yield f"widget {resource.metadata.name}: size {resource.spec['size']}\n"
    yield f"steps taken: {getattr(resource.status, 'step', 0)}\n"


WIDGET = Kind(
    kind="Widget",
    api_versions=(API_VERSION, "test.flowdeck.dev/v1beta1"),
    plural="widgets",
    short_names=("wd",),
    spec_model=WidgetSpec,
    reconcile=reconcile,
    finalize=finalize,
    logs=logs,
    columns=(("SIZE", "spec.size"), ("STEP", "status.step")),
)


def install_plugin(directory: Path) -> Path:
    """Make `directory` a sys.path entry that publishes WIDGET as a `flowdeck.kinds` entry point."""
    info = directory / "flowdeck_test_widgets-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flowdeck-test-widgets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[flowdeck.kinds]\nWidget = widget_kind:WIDGET\n")
    (directory / "widget_kind.py").write_text(Path(__file__).read_text())
    return directory
