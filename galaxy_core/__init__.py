"""galaxy_core: Galaxy Zoo 2 morphology, from images to the 37 decision-tree answers and what they are used for.

The folders follow the data's trip, and each imports only the ones before it (``tests/test_package.py`` checks)::

    data/       images in, the cache out: folders, catalogues, FITS, decoding, the memory-mapped cache
    demo/       the built-in synthetic data set
    mergers/    the merger fraction from answers as arrays: intervals, calibration, redshift, morphology
    models/     the registry, layers, transforms, inference, training settings, run folders and launching runs
    predict/    answers for galaxies: the model chosen, predictions, RMSE, spreads
    training/   the loop, distillation, the time estimate, the benchmark, export
    discover/   embeddings, similar and unusual galaxies, questions of one's own
    show/       statistics, figures, sky positions, SAMP, what a dashboard user may read
    cli/        ``python -m galaxy_core``: thin commands over the same functions

under the modules every stage shares: ``tree`` (the 11 questions and 37 answers), ``errors`` (the input errors),
``atomic`` (atomic writes and locks), ``progress`` (progress, sizes and durations, work in parts), ``tables``
(astronomers' tables in and out), ``hardware`` (the device and its precision) and ``distributed`` (several
processes under torchrun). Each subpackage's ``__init__`` says what its modules do; docs/architecture.md maps every
module, generated from the code. Nothing here imports Streamlit: the dashboard's pages read widgets, call these
functions and draw.
"""

__version__ = "0.1.0"
