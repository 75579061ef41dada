"""fairkit.classifier: the binary loss and accuracy that the one-logit classifier stages share."""
import math

import pytest
import torch

from fairkit.classifier import binary_correct, binary_cross_entropy


def test_binary_cross_entropy_is_the_mean_negative_log_likelihood():
    logits, label = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1, 0, 0])
    sigmoid = [0.5, 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))]
    expected = -(math.log(sigmoid[0]) + math.log(1 - sigmoid[1]) + math.log(1 - sigmoid[2])) / 3
    assert binary_cross_entropy(logits, label).item() == pytest.approx(expected, rel=1e-6)


def test_binary_correct_reads_a_positive_logit_as_1_for_int_and_float_labels():
    logits = torch.tensor([[0.5, -0.5], [-2.0, 3.0]])
    assert binary_correct(logits, torch.tensor([[1, 1], [0, 0]])).tolist() == [[True, False], [True, False]]
    assert binary_correct(logits, torch.tensor([[1.0, 0.0], [1.0, 1.0]])).tolist() == [[True, True], [False, True]]
