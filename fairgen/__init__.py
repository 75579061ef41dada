"""Fair generative modelling via weak supervision (Choi, Grover, Singh, Shu, Ermon, ICML 2020).

A density-ratio classifier tells a small balanced reference set from a large biased dataset (stage 1); a
BigGAN-style GAN is trained on both with the discriminator's real term weighted by r(x)^alpha (stage 2), so that
its samples follow the reference distribution. See fairgen/README.md for the commands and results.
"""
