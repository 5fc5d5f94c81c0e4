"""Adaptive batching: concurrent requests to one model share one call of its runtime.

Off by default. With `max_batch_size` > 1, the rows of requests that arrive while the model is busy
(or within `max_latency_ms` of the first one waiting) are concatenated, predicted in one
`predict_array` call on the model's thread pool, and split back, so each request gets exactly its
own rows' predictions. A lone request is never held back longer than `max_latency_ms`; under load
the batches fill while the previous one runs. Requests whose rows cannot be stacked (different
feature counts or dtypes) go in separate batches, and a batch that fails is retried request by
request so one bad input fails only its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from flowdeck.serving.model import Model


@dataclass(frozen=True)
class BatchConfig:
    """Per-model batching: at most `max_batch_size` rows per call, waiting at most `max_latency_ms` to fill."""

    max_batch_size: int = 32
    max_latency_ms: float = 2.0


def batch_function(model: Model) -> Callable[[np.ndarray], np.ndarray] | None:
    """The row-wise predict of a model that supports batching (numpy rows in, one prediction per row out)."""
    from flowdeck.serving.formats.array import ArrayModel

    return model.predict_rows if isinstance(model, ArrayModel) else None


class Batcher:
    """Collects rows from concurrent requests and runs `function` on them together."""

    def __init__(self, function: Callable[[np.ndarray], np.ndarray], executor: Executor, config: BatchConfig,
                 batch_sizes: Histogram | None = None) -> None:
        self.function = function
        self.executor = executor
        self.config = config
        self.batch_sizes = batch_sizes
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._rows = 0
        self._wakeup: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, rows: Any) -> np.ndarray:
        """The predictions for `rows`, computed in a batch with whatever else is waiting."""
        if not isinstance(rows, np.ndarray) or rows.ndim == 0:
            return await asyncio.get_running_loop().run_in_executor(self.executor, self.function, rows)
        if self._worker is None:
            self._wakeup, self._full = asyncio.Event(), asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        assert self._wakeup is not None and self._full is not None
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        self._rows += len(rows)
        self._wakeup.set()
        if self._rows >= self.config.max_batch_size:
            self._full.set()
        return await future

    async def _run(self) -> None:
        assert self._wakeup is not None and self._full is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if self._rows < self.config.max_batch_size and self.config.max_latency_ms > 0:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.config.max_latency_ms / 1000)
            batch = self._take()
            for group in _compatible_groups(batch):
                await self._predict(loop, group)

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        """Up to max_batch_size rows' worth of waiting requests (at least one)."""
        assert self._wakeup is not None and self._full is not None
        taken, rows = [], 0
        while self._pending and (not taken or rows + len(self._pending[0][0]) <= self.config.max_batch_size):
            item = self._pending.pop(0)
            taken.append(item)
            rows += len(item[0])
        self._rows -= rows
        if not self._pending:
            self._wakeup.clear()
        if self._rows < self.config.max_batch_size:
            self._full.clear()
        return taken

    async def _predict(self, loop: asyncio.AbstractEventLoop,
                       group: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        if self.batch_sizes is not None:
            self.batch_sizes.observe(len(group))
        if len(group) == 1:
            await self._predict_one(loop, *group[0])
            return
        try:
            stacked = np.concatenate([rows for rows, _ in group])
            predictions = await loop.run_in_executor(self.executor, self.function, stacked)
            if len(predictions) != len(stacked):
                raise ValueError("the model returned a different number of predictions than rows")
        except Exception:  # noqa: BLE001 - fall back to one call per request, so errors stay per request
            for rows, future in group:
                await self._predict_one(loop, rows, future)
            return
        start = 0
        for rows, future in group:
            if not future.done():
                future.set_result(predictions[start:start + len(rows)])
            start += len(rows)

    async def _predict_one(self, loop: asyncio.AbstractEventLoop, rows: np.ndarray,
                           future: asyncio.Future[np.ndarray]) -> None:
        try:
            result = await loop.run_in_executor(self.executor, self.function, rows)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting request
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


def _compatible_groups(batch: list[tuple[np.ndarray, Any]]) -> list[list[tuple[np.ndarray, Any]]]:
    """The batch split into runs of requests whose rows stack (same trailing shape and dtype)."""
    groups: dict[tuple[Any, ...], list[tuple[np.ndarray, Any]]] = {}
    for item in batch:
        rows = item[0]
        groups.setdefault((rows.shape[1:], rows.dtype.str), []).append(item)
    return list(groups.values())
