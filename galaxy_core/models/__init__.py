"""What a model is, how it is trained and where its trained copies live.

``registry`` (named constructors, features + decision-tree head, safetensors + JSON), ``layers`` (the residual
block and the ``galaxynet`` backbone), ``transforms`` (crops, augmentation, the eight dihedral views), ``inference``
(batched, multi-view prediction and embedding), ``config`` (``TrainConfig`` and the recipes), ``runs`` (run
folders: metrics, status, listing) and ``launcher`` (starting and stopping runs in the background).
"""
