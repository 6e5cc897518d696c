"""Answers: the 37 vote fractions for galaxies, how good they are and how sure.

``modelchoice`` (which model, and loading it), ``prediction`` (answers for a cache, image files or a folder; the
Kaggle CSV), ``prediction_store`` (a cache's predictions kept on disk), ``metrics`` (RMSE over the known answers),
``evaluation`` (RMSE per answer and question on galaxies a model never learnt from, galleries),
``uncertainty`` (a spread beside each answer and whether it means anything), ``plusminus`` (value ± c x spread as
pages show it) and ``doubt`` (the spread for galaxies of a cache, scaled on held-out galaxies).
"""
