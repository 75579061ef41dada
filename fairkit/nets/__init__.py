"""Network building blocks shared by the methods.

- :mod:`fairkit.nets.flows`: invertible layers (``forward(x, cond) -> (y, logdet)``, ``reverse(y, cond) -> x``)
  and two ready-made flows (:class:`MultiScaleFlow`, :class:`VectorFlow`).
- :mod:`fairkit.nets.autoencoders`: IIN's conv encoder/decoder, a diagonal Gaussian, a PatchGAN discriminator.
- :mod:`fairkit.nets.classifiers`: SimpleConvNet (EnD), ResNet, ConvNet, MLP.
- :mod:`fairkit.nets.gan`: BigGAN-style generator/discriminator, EMA of G, hinge losses, and :class:`GAN`
  holding all three.
"""
from fairkit.nets import autoencoders, classifiers, flows, gan
from fairkit.nets.autoencoders import ActNormLayer, Decoder, DiagonalGaussian, Encoder, PatchDiscriminator, make_norm
from fairkit.nets.classifiers import MLP, ConvNet, L2Normalize, ResNet, SimpleConvNet
from fairkit.nets.flows import *  # noqa: F403 (flows.__all__ names its public layers)
from fairkit.nets.gan import EMA, GAN, Discriminator, Generator, d_hinge_loss, g_hinge_loss

__all__ = [*flows.__all__, "ActNormLayer", "make_norm", "Encoder", "Decoder", "DiagonalGaussian",
           "PatchDiscriminator", "SimpleConvNet", "ResNet", "ConvNet", "MLP", "L2Normalize", "Generator",
           "Discriminator", "EMA", "GAN", "d_hinge_loss", "g_hinge_loss"]
