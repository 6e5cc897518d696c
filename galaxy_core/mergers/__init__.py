"""The merger fraction, from answers as arrays: a model's or the volunteers', so nothing here needs a model.

``fraction`` (the fraction with its intervals, against Lotz et al. 2011), ``calibration`` (the model's mergers
against the volunteers'), ``evolution`` (the fraction against redshift or mass, and f(z) = R0 (1+z)^m x T),
``morphology`` (statmorph's Gini, M20 and asymmetry) and ``compare`` (every method on the same galaxies, as the
command line and the Mergers page show them).
"""
