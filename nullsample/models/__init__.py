"""Models of null-sampling: the cFlow, the cVAE, the adversary and the downstream classifier."""
from nullsample.models.adversary import DiscriminatorEnsemble, GradReverse, grad_reverse
from nullsample.models.classifier import Classifier
from nullsample.models.flow import CFlow
from nullsample.models.vae import CVAE

__all__ = ["CFlow", "CVAE", "Classifier", "DiscriminatorEnsemble", "GradReverse", "grad_reverse"]
