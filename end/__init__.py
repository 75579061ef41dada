"""EnD: entangling and disentangling deep representations for bias correction (Tartaglione et al., CVPR 2021).

- :mod:`end.data`: Biased MNIST (colour-biased digits) and its splits.
- :mod:`end.losses`: the EnD regulariser, attached to any model through a forward hook on a named layer.
- :mod:`end.models`: SimpleConvNet built from a config.
- :mod:`end.iterators`: the trainer (cross-entropy + alpha R_perp + beta R_par).
- :mod:`end.callbacks`: accuracy and per-colour accuracy after every epoch.
- ``python -m end.scripts.demo``: vanilla against EnD at CPU scale; ``python -m end.scripts.sweep``: alpha/beta/seed grids.
"""
