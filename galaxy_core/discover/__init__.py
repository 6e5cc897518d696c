"""Finding galaxies: embeddings and questions of one's own.

``embeddings`` (one vector per galaxy from a model's backbone), ``similarity`` (nearest neighbours, the unusual
galaxies, PCA, faiss), ``own_questions`` (a yes/no question learnt from galaxies a user marks) and ``finetune``
(the backbone's last stage tuned to that question).
"""
