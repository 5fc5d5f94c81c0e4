"""The kinds flowdeck knows, found through `flowdeck.kinds` entry points.

A capability package adds a kind by naming its `Kind` object in its packaging metadata:

    [project.entry-points."flowdeck.kinds"]
    PipelineRun = "flowdeck.pipelines.kind:PIPELINE_RUN"

The default registry imports those modules the first time a kind is looked up, so commands that never
touch resources never pay for them. A kind that fails to load is logged and left out rather than
taking every other kind down with it. Tests may `register` extra kinds on a registry of their own or
on the default one.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points

from flowdeck.resources.kinds import Kind

logger = logging.getLogger("flowdeck.resources")

ENTRY_POINT_GROUP = "flowdeck.kinds"


class UnknownKind(LookupError):
    """No registered kind has that name (or apiVersion); the message lists what is known."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Registry:
    """Kinds by name; each is reachable by kind, plural and short names, in any letter case."""

    def __init__(self, kinds: Iterable[Kind] = ()) -> None:
        self._kinds: dict[str, Kind] = {}
        self._names: dict[str, Kind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: Kind) -> None:
        """Add a kind; a name already used by another kind is refused (ValueError)."""
        for name in kind.names:
            other = self._names.get(name)
            if other is not None and other.kind != kind.kind:
                raise ValueError(f"kind {kind.kind}: the name {name!r} is already used by kind {other.kind}")
        if kind.kind in self._kinds:
            self.unregister(kind.kind)
        self._kinds[kind.kind] = kind
        for name in kind.names:
            self._names[name] = kind

    def unregister(self, kind_name: str) -> None:
        kind = self._kinds.pop(kind_name, None)
        if kind is not None:
            for name in kind.names:
                self._names.pop(name, None)

    def find(self, name: str) -> Kind | None:
        """The kind called `name` (kind, plural or short name, any case), or None."""
        return self._names.get(name.lower())

    def get(self, name: str) -> Kind:
        """The kind called `name`, or `UnknownKind` naming the kinds there are."""
        kind = self.find(name)
        if kind is None:
            raise UnknownKind(f"unknown kind {name!r}{self._hint(name)}")
        return kind

    def for_document(self, api_version: str, kind_name: str) -> Kind:
        """The kind of a document with this apiVersion and kind (kind spelled exactly, as Kubernetes does)."""
        kind = self._kinds.get(kind_name)
        if kind is None:
            raise UnknownKind(f"unknown kind {kind_name!r} (apiVersion {api_version}){self._hint(kind_name)}")
        if api_version not in kind.api_versions:
            expected = " or ".join(kind.api_versions)
            raise UnknownKind(f"kind {kind_name} has no apiVersion {api_version!r} (expected {expected})")
        return kind

    def __iter__(self) -> Iterator[Kind]:
        return iter(sorted(self._kinds.values(), key=lambda k: k.kind))

    def __len__(self) -> int:
        return len(self._kinds)

    def _hint(self, name: str) -> str:
        if not self._kinds:
            return "; no kinds are installed"
        close = difflib.get_close_matches(name.lower(), list(self._names), n=1, cutoff=0.75)
        if close:
            return f"; did you mean {self._names[close[0]].kind}?"
        return f"; known kinds: {', '.join(sorted(self._kinds))}"


def load_entry_points(registry: Registry, group: str = ENTRY_POINT_GROUP) -> Registry:
    """Register every kind published under the entry point group."""
    for entry_point in entry_points(group=group):
        try:
            kind = entry_point.load()
            if not isinstance(kind, Kind):
                raise TypeError(f"{entry_point.value} is a {type(kind).__name__}, not a flowdeck Kind")
            registry.register(kind)
        except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the other kinds
            logger.warning("kind %s (%s) is left out: %s: %s", entry_point.name, entry_point.value,
                           type(exc).__name__, exc)
    return registry


_default: Registry | None = None
_lock = threading.Lock()


def registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = load_entry_points(Registry())
        return _default
