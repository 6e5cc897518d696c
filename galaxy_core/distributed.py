"""Several processes, on one machine or many, through PyTorch's own ``torch.distributed``.

Launched by ``torchrun`` (or by SLURM's ``srun`` around it), every process gets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address in its environment; :func:`start` reads them and joins the process group,
with ``nccl`` when the processes train on CUDA GPUs (one each, by local rank) and ``gloo`` on CPUs. Without them
(a plain ``python -m galaxy_core ...``) everything here is a no-op for one process, so the single-process path
stays what it was: training and prediction call the helpers and never branch on how they were launched.

What the helpers do, and who uses them:

- :func:`process_device` is the device a process computes on for a ``--device`` setting (a launched process's
  own GPU): training's, prediction's and the command line's models'.
- :func:`shard` splits rows (or file paths) into contiguous, nearly equal parts, one per rank: prediction keeps
  the parts in order, so concatenating them restores the id order; validation sums over them.
- :func:`sum_` adds tensors over the ranks (validation's squared errors, the STOP flag); :func:`barrier` waits
  for them all.
- :func:`gather` collects one picklable object from each rank, in rank order, on every rank. Only objects the
  processes made themselves travel this way (never a file's contents), so unpickling them is safe.
- :func:`all_ok` runs a rank's work and tells every rank whether any failed, with the first error: a collective
  call that one rank never reaches would leave the others waiting until the timeout.
"""

from __future__ import annotations

import datetime
import gc
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist

from galaxy_core.hardware import pick_device
from galaxy_core.progress import part

TIMEOUT = datetime.timedelta(minutes=30)
"""How long a rank waits at a collective call for the others (a validation pass on a slow rank included)."""


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` processes, ``local_rank`` on its machine (its GPU)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes the run folder, the CSV and the console output."""
        return self.rank == 0


def launcher(processes: int) -> tuple[list[str], dict[str, str]]:
    """The command line that starts ``python -m galaxy_core`` as ``processes`` processes on this machine
    (``torchrun --standalone``; the plain interpreter for one) and its environment, in which the machine's cores
    are shared out between the processes as threads (one process keeps the environment as it is)."""
    env = dict(os.environ)
    if processes == 1:
        return [sys.executable, "-m", "galaxy_core"], env
    env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m",
            "galaxy_core"], env


def launched() -> bool:
    """Whether ``torchrun`` (or a launcher setting the same variables) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> World:
    """Join the process group when :func:`launched` (once; later calls return the same world), with ``nccl`` for
    CUDA devices and ``gloo`` for the CPU. A CUDA process takes the GPU of its local rank. One process: ``World()``.
    """
    if not launched():
        return World()
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return current()


def current() -> World:
    """The world this process is in: ``World()`` until :func:`start` has joined a group."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                 int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def device_for(device: torch.device) -> torch.device:
    """``cuda`` becomes this process's own GPU (``cuda:<local rank>``); other devices are returned as they are."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def process_device(name: str = "auto") -> torch.device:
    """The device this process computes on for a ``--device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:1``):
    ``hardware.pick_device``'s, with a bare ``cuda`` made this process's own GPU under ``torchrun``
    (:func:`device_for`). Raises RuntimeError for ``cuda`` without a CUDA GPU, as ``pick_device`` does."""
    return device_for(pick_device(name))


def stop() -> None:
    """Leave the process group (at the end of a command), so that the launcher sees a clean exit."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        # Something in a reference cycle (most likely the training's DistributedDataParallel wrapper) still holds
        # the gloo group. Left to the interpreter's exit, its C++ threads were torn down after Python and aborted
        # the process ("terminate called without an active exception") in 3 of 6 test runs of two-process
        # training on a 2-core CPU; freed here, while Python is alive, none of 16 did.
        gc.collect()


def shard(items, world: World):
    """This rank's contiguous part of ``items`` (an array or a list): ``len(items)`` split into ``world.size``
    parts whose lengths differ by at most one (``progress.part``, which ``prepare --shard`` uses too)."""
    return items[part(len(items), world.rank, world.size)]


def sum_(x: torch.Tensor) -> torch.Tensor:
    """``x`` summed over the ranks (in place, and returned); ``x`` itself for one process. Every rank must call it:
    it is also how the ranks wait for each other. ``nccl`` sums on this process's GPU, ``gloo`` where ``x`` is."""
    if current().size > 1:
        y = x.cuda() if dist.get_backend() == "nccl" else x
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        if y is not x:
            x.copy_(y)
    return x


def barrier() -> None:
    """Wait until every rank gets here (for example, until rank 0 has written a file the others read)."""
    sum_(torch.zeros(1))


def gather(obj: Any) -> list:
    """One object from every rank, in rank order, on every rank; ``[obj]`` for one process."""
    world = current()
    if world.size == 1:
        return [obj]
    out: list = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (for example the run folder, whose name holds rank 0's clock)."""
    if current().size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class RankFailed(RuntimeError):
    """Another rank's work failed; its message names the rank and the error."""


def all_ok(work: Callable[[], Any]) -> list:
    """Run ``work()`` on every rank and return every rank's result, in rank order; when any rank raised, every
    rank raises: the failing rank its own exception, the others :class:`RankFailed` naming the first failure."""
    try:
        mine = ("ok", work())
    except Exception as e:  # noqa: BLE001 - reported to every rank, then raised again here
        mine = ("error", f"{type(e).__name__}: {e}")
        error = e
    else:
        error = None
    parts = gather(mine)
    if error is not None:
        raise error
    failed = [(r, p[1]) for r, p in enumerate(parts) if p[0] == "error"]
    if failed:
        rank, message = failed[0]
        raise RankFailed(f"rank {rank} of {len(parts)} failed: {message}")
    return [p[1] for p in parts]
