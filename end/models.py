"""EnD's network for Biased MNIST, built from the config's ``Model`` section."""
from __future__ import annotations

from typing import Mapping

from edflow.config import section
from fairkit.nets.classifiers import SimpleConvNet

MODEL_DEFAULTS = {"num_classes": 10, "in_channels": 3, "width": 1.0, "arch": "end"}

# arch -> SimpleConvNet options. "end": EnD's net (BN + Tanh after the last conv, L2-normalised features), on which
# the regulariser works. "rebias": ReBias's net (BN + ReLU after every conv, no normalisation), which trained the
# vanilla row of the EnD paper's table (its numbers are ReBias's baseline).
ARCHS = {"end": {"last_activation": "tanh", "normalize": True},
         "rebias": {"last_activation": "relu", "normalize": False}}


class Model(SimpleConvNet):
    """SimpleConvNet (``Model: {width: 0.25}`` scales every conv's channels; 1.0 is the paper's net;
    ``Model: {arch: rebias}`` is ReBias's baseline net). Its pooled features come out of the layer
    ``features_norm``, where the EnD hook reads them."""

    def __init__(self, config: Mapping):
        options = section(config, "Model", MODEL_DEFAULTS)
        if not float(options["width"]) > 0:
            raise ValueError(f"Model/width={options['width']} must be positive (1.0 = the paper's widths)")
        if options["arch"] not in ARCHS:
            raise ValueError(f"Model/arch={options['arch']!r}; choose one of {sorted(ARCHS)}")
        super().__init__(num_classes=int(options["num_classes"]), in_channels=int(options["in_channels"]),
                         width=float(options["width"]), **ARCHS[options["arch"]])
