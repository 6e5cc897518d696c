"""The benchmarks' measures (``benchmarks/measures.py``) on answers known by hand."""

import numpy as np

import measures


def test_auc_known_answers():
    assert measures.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert measures.roc_auc([0.5, 0.5], [0, 1]) == 0.5  # a tie counts half
    assert np.isnan(measures.roc_auc([0.1, 0.2], [1, 1]))
