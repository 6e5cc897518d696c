"""Tests for galaxy_core.training.staging: the training images on the device, or read batch by batch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from galaxy_core.training import staging


def test_the_batch_reader_stops_when_the_loop_does_and_passes_on_its_errors(tiny_cache):
    """The reading thread (a GPU's; forced here on the CPU)."""
    images = tiny_cache.images
    staged = staging.Staged(images, np.arange(len(images)), torch.device("cpu"), budget_bytes=0, read_ahead=True)
    assert staged.resident is None
    steps = [(np.array([i, i + 1]), torch.tensor([i, i + 1])) for i in range(0, 20, 2)]
    batches = staged.batches(steps)
    first = next(batches)
    assert torch.equal(first, torch.from_numpy(np.asarray(images[[0, 1]])))
    batches.close()  # a STOP after the first step: the reading thread ends rather than waiting on a full queue
    assert not [t for t in threading.enumerate() if t.name == "galaxy_core batch reader"]
    with pytest.raises(IndexError):
        list(staged.batches([(np.array([10**9]), torch.tensor([0]))]))


def test_resident_batches_come_in_the_requested_order(tiny_cache):
    images = tiny_cache.images
    rows = np.array([5, 2, 9, 0])
    staged = staging.Staged(images, rows, torch.device("cpu"), budget_bytes=10**9)
    assert staged.resident is not None and len(staged) == 4
    [batch] = staged.batches([(np.array([0, 1, 3]), torch.tensor([0, 1, 3]))])
    assert torch.equal(batch, torch.from_numpy(np.asarray(images[[5, 2, 0]])))


def test_memory_budget():
    assert staging.memory_budget(torch.device("cpu"), 0.5) == 2**29
    assert staging.memory_budget(torch.device("cpu")) == 4 * 2**30
