"""Staging the training images for the loop: whole on the device when they fit, else read batch by batch from the
cache's memory map."""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import numpy as np
import torch


def memory_budget(device: torch.device, gib: float | None = None) -> int:
    """Bytes of images that may be staged on ``device``: ``gib`` GiB when given, else half the free GPU memory, or
    4 GiB on a CPU."""
    if gib is not None:
        return int(gib * 2**30)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 4 * 2**30


class Staged:
    """Training images as a uint8 tensor: whole on the device when they fit (the usual case: 61,578 galaxies at
    80 px are 1.2 GB), else read from the memory map batch by batch: on a GPU by a background thread, ahead of the
    steps, while the host waits for the GPU anyway; on a CPU in the training thread, between steps. There a read
    costs about 2 ms against a 400 ms step, while a reading thread fought the computing threads for the cores and
    the GIL: 200 images/s against 323 resident (62 %), where reading in line gave 371 against 372
    (``benchmarks/bench_training.py --vary staging=stream``, 2-core EPYC).

    :meth:`batches` takes every step's positions both as a NumPy array and as a tensor on the device: a resident
    batch is gathered with the device tensor alone, so a training step never waits for a host-to-device copy of
    indices (which would stall the CPU until the GPU had finished the step before)."""

    AHEAD = 4
    """Batches the reading thread keeps ready: enough to ride out a slow read, little memory."""

    def __init__(self, images: np.ndarray, rows: np.ndarray, device: torch.device, budget_bytes: int,
                 read_ahead: bool | None = None):
        self.device, self.rows = device, rows
        self.read_ahead = device.type == "cuda" if read_ahead is None else read_ahead
        if len(rows) * int(np.prod(images.shape[1:])) <= budget_bytes:
            self.resident = torch.from_numpy(np.ascontiguousarray(images[np.sort(rows)])).to(device)
            # Position of each requested row in the sorted copy.
            self.order = torch.as_tensor(np.argsort(np.argsort(rows)), device=device)
            self.images = None
        else:
            self.resident, self.images = None, images

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, ix: np.ndarray) -> torch.Tensor:
        rows = self.rows[ix]
        srt = np.argsort(rows)  # sorted reads from the memory map, then back to the shuffled order
        batch = torch.from_numpy(np.ascontiguousarray(self.images[rows[srt]]))[torch.from_numpy(np.argsort(srt))]
        return batch.pin_memory() if self.device.type == "cuda" else batch

    def batches(self, steps: list[tuple[np.ndarray, torch.Tensor]]) -> Iterator[torch.Tensor]:
        """Each step's batch on the device, in order. From the memory map with ``read_ahead``, a thread reads up to
        :attr:`AHEAD` batches ahead, into pinned memory on CUDA so that the copy to the GPU is asynchronous. Closing
        the generator early (a STOP) ends the thread; an error in it is raised here."""
        if self.resident is not None:
            for _, ixt in steps:
                yield self.resident[self.order[ixt]]
            return
        if not self.read_ahead:
            for ix, _ in steps:
                yield self._read(ix).to(self.device, non_blocking=True)
            return
        ready: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        done = threading.Event()

        def read() -> None:
            try:
                for ix, _ in steps:
                    batch = self._read(ix)
                    while not done.is_set():
                        try:
                            ready.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if done.is_set():
                        return
            except BaseException as e:  # noqa: BLE001 - handed to the training thread, which raises it
                ready.put(e)

        reader = threading.Thread(target=read, name="galaxy_core batch reader", daemon=True)
        reader.start()
        try:
            for _ in steps:
                batch = ready.get()
                if isinstance(batch, BaseException):
                    raise batch
                yield batch.to(self.device, non_blocking=True)
        finally:
            done.set()
            reader.join()
