"""galaxy_core: Galaxy Zoo 2 morphology from images to the 37 decision-tree answers.

The data flows through one module per stage::

    data        read a Kaggle-layout folder, summarise it, prepare a memory-mapped uint8 cache and a split
    models      a registry of named models (features + decision-tree head), saved as safetensors + JSON
    training    one plain loop from a cache to a run folder (config, metrics.csv, best and last checkpoints)
    evaluation  RMSE overall, per answer and per question; true vs predicted; top-k galleries; runs compared
    prediction  the 37 answers for new images, in the Kaggle submission format

with ``tree`` (the decision tree as data), ``views`` (what a model sees: crops, augmentation, test-time views),
``distributed`` (several processes under ``torchrun``), ``demo`` (a synthetic dataset for first runs and tests) and
``cli`` (``python -m galaxy_core``). Nothing here
imports Streamlit: the dashboard's pages call these functions.
"""

__version__ = "0.1.0"
