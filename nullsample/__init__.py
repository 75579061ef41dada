"""Null-sampling (Kehrenberg, Bartlett, Thomas, Quadrianto, ECCV 2020): an invertible cFlow (or a cVAE) is trained
on data where s is independent of y, with an adversary that hides s from all latent dimensions but a small
partition z_s; zeroing z_s and inverting gives an image of x without its s ("null-sample"), on which a downstream
classifier trained on biased data learns y instead of s.
"""
