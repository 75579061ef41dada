"""EnD's network for Biased MNIST, built from the config's ``Model`` section."""
from __future__ import annotations

from typing import Mapping

from edflow.config import section
from fairkit.nets.classifiers import SimpleConvNet

MODEL_DEFAULTS = {"num_classes": 10, "in_channels": 3, "width": 1.0}


class Model(SimpleConvNet):
    """SimpleConvNet (``Model: {width: 0.25}`` scales every conv's channels; 1.0 is the paper's net). Its
    normalised features come out of the layer ``features_norm``, where the EnD hook reads them."""

    def __init__(self, config: Mapping):
        options = section(config, "Model", MODEL_DEFAULTS)
        if not float(options["width"]) > 0:
            raise ValueError(f"Model/width={options['width']} must be positive (1.0 = the paper's widths)")
        super().__init__(num_classes=int(options["num_classes"]), in_channels=int(options["in_channels"]),
                         width=float(options["width"]))
