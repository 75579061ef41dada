"""edflow 0.4's Fashion-MNIST: the MNIST file names in ``$EDDATA_CACHE/FashionMNIST/``; examples as for MNIST."""
from edflow.datasets.mnist import MNIST


class FashionMNIST(MNIST):
    NAME = "FashionMNIST"
    SOURCE = "https://github.com/zalandoresearch/fashion-mnist"


class FashionMNISTTrain(FashionMNIST):
    def _get_split(self):
        return "train"


class FashionMNISTTest(FashionMNIST):
    def _get_split(self):
        return "test"
