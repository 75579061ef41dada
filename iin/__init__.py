"""Invertible interpretation networks (Esser, Rombach, Ommer, CVPR 2020).

Stage 1: an autoencoder (:mod:`iin.models.ae`, :mod:`iin.losses.ae`, :mod:`iin.iterators.ae`) or a classifier
(:mod:`iin.models.clf`, :mod:`iin.iterators.clf`). Stage 2: an invertible network on its frozen codes, unsupervised
(``VectorTransformer``) or disentangling into semantic factors (``FactorTransformer``) (:mod:`iin.models.iin`,
:mod:`iin.losses.iin`, :mod:`iin.iterators.iin`). Datasets in :mod:`iin.data`, evaluations in :mod:`iin.callbacks`.
"""
