"""Latent-space de-biasing (Ramaswamy, Kim, Russakovsky, CVPR 2021) as a chain of edflow stages:

1. baseline attribute classifiers for the target and the protected attribute (``ClassifierTrainer``);
2. a GAN on the training images (fairkit's BigGAN and trainer, :mod:`fairkit.gan`);
3. the synthetic stage (``SyntheticStage``): N latents z, images G(z) labelled by the classifiers, linear SVM
   hyperplanes on z, complementary latents z' (same target score, negated protected score), images G(z');
4. the target classifier retrained on real + G(z) + G(z') (``ClassifierTrainer`` on ``AugmentedTrain``).

Metrics: AP, DEO, BA and KL with the calibrated threshold and bootstrap intervals (:mod:`latentdebias.callbacks`).
"""
