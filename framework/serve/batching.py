"""Dynamic micro-batching: images from concurrent requests share one model call.

A batch takes the images queued, then waits for the images still being decoded
(:meth:`MicroBatcher.expecting`) at most ``max_wait_s``: a lone request is never held back, and
concurrent ones share a call. A batch holds at most ``max_batch`` images, and at most
``max_queue`` images wait: a request that would overflow the queue is
refused at once (:class:`QueueFull`, answered 503 with ``Retry-After``) instead of the queue
growing without bound. Batches run one at a time on one thread (onnxruntime spreads each over
its intra-op threads). Hand-written: the ASGI libraries have no batcher, and the serving
frameworks that do (Ray Serve, BentoML, Triton) are whole servers.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np


class QueueFull(Exception):
    """More images are waiting than the queue holds."""


@dataclass
class _Item:
    array: np.ndarray
    future: asyncio.Future


class MicroBatcher:
    """``await batcher.submit(arrays)`` -> ``run``'s results for those arrays, in order.

    ``run`` takes an N x ... stacked batch and returns N results; ``on_batch(n)`` is told each
    batch's size (metrics).
    """

    def __init__(self, run: Callable[[np.ndarray], Sequence[Any]], max_batch: int, max_wait_s: float,
                 max_queue: int, on_batch: Callable[[int], None] = lambda n: None) -> None:
        self.run, self.max_batch, self.max_wait_s, self.on_batch = run, max_batch, max_wait_s, on_batch
        self.max_queue = max_queue
        self._queue: asyncio.Queue[_Item] | None = None
        self._incoming = 0  # images being decoded that will be submitted
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tlf-infer")

    @property
    def depth(self) -> int:
        """Images waiting for the model."""
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        """Start batching on the running event loop."""
        self._queue = asyncio.Queue(self.max_queue)
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        """Stop after the batch in progress (requests still waiting have been answered by then:
        the server stops taking requests and finishes those in flight before this runs)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    @contextmanager
    def expecting(self, images: int) -> Iterator[None]:
        """Around the decoding of ``images`` about to be submitted: batches wait for them."""
        self._incoming += images
        try:
            yield
        finally:
            self._incoming -= images

    async def submit(self, arrays: Sequence[np.ndarray]) -> list[Any]:
        """Queue ``arrays`` (all or none) and wait for their results."""
        assert self._queue is not None, "MicroBatcher.start() was not called"
        if self.max_queue - self._queue.qsize() < len(arrays):
            raise QueueFull(f"{self._queue.qsize()} images are waiting (the queue holds {self.max_queue})")
        loop = asyncio.get_running_loop()
        items = [_Item(array, loop.create_future()) for array in arrays]
        for item in items:
            self._queue.put_nowait(item)
        try:
            return list(await asyncio.gather(*(item.future for item in items)))
        finally:
            for item in items:
                item.future.cancel()  # a request given up on (timeout, client gone): its images are skipped

    async def _collect(self) -> list[_Item]:
        """The next batch: the first item, what is queued, then what is being decoded and arrives
        within max_wait_s; up to max_batch."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while len(batch) < self.max_batch:
            if self._queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0 or self._incoming == 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
            else:
                batch.append(self._queue.get_nowait())
        return [item for item in batch if not item.future.done()]

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if not batch:
                continue
            self.on_batch(len(batch))
            try:
                results = await loop.run_in_executor(self._executor, self.run, np.stack([i.array for i in batch]))
            except Exception as exc:  # the model failed: every waiting request hears why, the loop goes on
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, result in zip(batch, results):
                if not item.future.done():
                    item.future.set_result(result)
