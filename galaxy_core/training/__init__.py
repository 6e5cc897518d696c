"""Making models: the loop and everything around it.

``staging`` (the training images on the device or streamed), ``ema`` (a moving average of the weights),
``checkpoint`` (a run's ``best/`` and ``last/``), ``distill`` (teachers' answers as targets), ``loop`` (the
training loop: ``train``), ``estimate`` (how long a training takes here), ``benchmark`` (every model on one split)
and ``export`` (a run as a shipped checkpoint). Training sits above ``predict`` because distillation and export
predict with trained models.
"""
