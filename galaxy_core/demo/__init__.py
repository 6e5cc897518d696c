"""The built-in synthetic data set, so that everything runs without real data.

``synthetic`` (kinds of made-up galaxy, their parameters and labels that obey the tree), ``render`` (one drawn as
an SDSS-like cutout) and ``demo_set`` (the set in the Kaggle layout, made on first use: ``ensure_demo_dataset``).
"""
