"""EnD's regulariser against hand-made feature batches and a direct double loop over pairs of samples."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from end.losses import (EnDRegularizer, disentangling_term, end_terms, entangling_term, find_layer,
                        pairwise_similarity)


def loop_terms(features, target, bias, pairs="all"):
    """R_perp and R_par summed pair by pair (i > j), straight from the definitions. ``pairs="official"`` counts in
    R_par only the pairs whose later sample has the smaller bias label, as EnD's ``abs_parallel`` does."""
    unit = F.normalize(features.flatten(1), dim=1)
    n = len(unit)
    within = {}
    perp_pairs = 0
    par_sum, par_pairs = 0.0, 0
    for i in range(n):
        for j in range(i):
            similarity = torch.clamp(unit[i] @ unit[j], -1, 1)
            if bias[i] == bias[j]:
                within[int(bias[i])] = within.get(int(bias[i]), 0.0) + similarity
                perp_pairs += 1
            elif target[i] == target[j] and (pairs == "all" or bias[i] < bias[j]):
                par_sum = par_sum + (1 + similarity) / 2
                par_pairs += 1
    perp = sum(abs(s) for s in within.values()) / perp_pairs if perp_pairs else torch.tensor(0.0)
    par = 1 - par_sum / par_pairs if par_pairs else torch.tensor(0.0)
    return torch.as_tensor(perp), torch.as_tensor(par)


def random_batch(seed, n=24, dim=6, classes=3, biases=4):
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    target = torch.randint(0, classes, (n,), generator=generator)
    bias = torch.randint(0, biases, (n,), generator=generator)
    return features, target, bias


@pytest.mark.parametrize("pairs", ["official", "all"])
@pytest.mark.parametrize("seed", range(5))
def test_terms_match_double_loop(seed, pairs):
    features, target, bias = random_batch(seed)
    terms = end_terms(features, target, bias, par_pairs=pairs)
    perp, par = loop_terms(features, target, bias, pairs)
    assert terms["perp"].item() == pytest.approx(perp.item(), rel=1e-10)
    assert terms["par"].item() == pytest.approx(par.item(), rel=1e-10)


@pytest.mark.parametrize("pairs", ["official", "all"])
def test_gradients_match_double_loop(pairs):
    features, target, bias = random_batch(7, n=12)
    vectorised = features.clone().requires_grad_(True)
    looped = features.clone().requires_grad_(True)
    terms = end_terms(vectorised, target, bias, par_pairs=pairs)
    (0.3 * terms["perp"] + 0.7 * terms["par"]).backward()
    perp, par = loop_terms(looped, target, bias, pairs)
    (0.3 * perp + 0.7 * par).backward()
    torch.testing.assert_close(vectorised.grad, looped.grad, rtol=1e-9, atol=1e-12)


def test_orthogonal_features_within_each_bias_class_give_zero_perp():
    bias = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    features = torch.zeros(8, 8)
    for b in bias.unique():  # samples of one bias class: distinct basis vectors; other classes may overlap
        members = (bias == b).nonzero().flatten()
        for k, i in enumerate(members):
            features[i, k] = 1.0
    assert pairwise_similarity(features).abs().sum() > 0  # not trivially orthogonal across classes
    assert disentangling_term(pairwise_similarity(features), bias).item() == pytest.approx(0.0, abs=1e-7)


def test_parallel_features_within_a_bias_class_give_perp_one():
    bias = torch.tensor([0, 0, 1, 1, 1])
    features = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [0, 3.0], [0, 0.5]])
    assert disentangling_term(pairwise_similarity(features), bias).item() == pytest.approx(1.0)


def test_perp_takes_the_absolute_value_per_bias_class():
    # class 0: one pair at similarity +1; class 1: one pair at -1. Per-class |sums| give 2 / 2 pairs = 1, where a
    # single absolute value over all pairs would cancel to 0.
    bias = torch.tensor([0, 0, 1, 1])
    features = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, -1.0]])
    assert disentangling_term(pairwise_similarity(features), bias).item() == pytest.approx(1.0)


def test_identical_features_of_one_target_across_bias_classes_give_zero_par():
    target = torch.tensor([0, 0, 0, 1, 1, 1, 2])
    bias = torch.tensor([0, 1, 2, 1, 2, 2, 0])
    prototypes = torch.randn(3, 5)
    features = prototypes[target]
    assert entangling_term(pairwise_similarity(features), target, bias).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("pairs", ["official", "all"])
def test_opposite_features_of_one_target_give_par_one(pairs):
    target = torch.tensor([4, 4])
    bias = torch.tensor([1, 0])  # the later sample has the smaller bias label: a pair under both rules
    features = torch.tensor([[1.0, 2.0], [-1.0, -2.0]])
    assert entangling_term(pairwise_similarity(features), target, bias, pairs).item() == pytest.approx(1.0)


def test_official_pairs_skip_a_pair_whose_later_sample_has_the_larger_bias_label():
    target, bias = torch.tensor([4, 4]), torch.tensor([0, 1])
    gram = pairwise_similarity(torch.tensor([[1.0, 2.0], [-1.0, -2.0]]))
    assert entangling_term(gram, target, bias, "official").item() == 0.0
    assert entangling_term(gram, target, bias, "all").item() == pytest.approx(1.0)


def test_terms_are_zero_without_pairs():
    features = torch.randn(4, 3)
    all_different = torch.arange(4)
    assert disentangling_term(pairwise_similarity(features), all_different).item() == 0.0
    # every target class has a single bias class: no pair to entangle
    assert entangling_term(pairwise_similarity(features), torch.tensor([0, 0, 1, 1]),
                           torch.tensor([5, 5, 6, 6])).item() == 0.0


def test_labels_of_the_wrong_shape_are_refused():
    gram = pairwise_similarity(torch.randn(4, 3))
    with pytest.raises(ValueError, match="one label per sample"):
        disentangling_term(gram, torch.zeros(3, dtype=torch.long))


class TwoLayerNet(nn.Module):
    """Any model: the regulariser only needs a named layer."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 7), nn.ReLU())
        self.embedding = nn.Linear(7, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.embedding(self.body(x)))


@pytest.mark.parametrize("normalize", [False, True])
def test_hook_reads_the_named_layer_of_any_model(normalize):
    torch.manual_seed(0)
    model = TwoLayerNet()
    regularizer = EnDRegularizer(model, "embedding", alpha=0.5, beta=2.0, normalize=normalize)
    x = torch.randn(16, 5)
    target, bias = torch.randint(0, 3, (16,)), torch.randint(0, 2, (16,))
    model(x)
    terms = regularizer(target, bias)
    expected = end_terms(model.embedding(model.body(x)), target, bias, normalize=normalize)
    torch.testing.assert_close(terms["perp"], expected["perp"])
    torch.testing.assert_close(terms["par"], expected["par"])
    torch.testing.assert_close(terms["loss"], 0.5 * expected["perp"] + 2.0 * expected["par"])
    terms["loss"].backward()  # the hooked features stay in the graph
    assert model.body[0].weight.grad.abs().sum() > 0
    assert model.head.weight.grad is None  # the head is not under the regulariser
    regularizer.remove()


def test_nested_layer_names_work():
    model = nn.Sequential(TwoLayerNet())
    regularizer = EnDRegularizer(model, "0.body.1", alpha=1.0, beta=0.0)
    model(torch.randn(6, 5))
    assert regularizer.features.shape == (6, 7)


def test_a_term_with_weight_zero_is_skipped():
    model = TwoLayerNet()
    x, target, bias = torch.randn(10, 5), torch.randint(0, 3, (10,)), torch.randint(0, 2, (10,))
    only_par = EnDRegularizer(model, "embedding", alpha=0.0, beta=1.0)
    model(x)
    terms = only_par(target, bias)
    assert "perp" not in terms and terms["loss"] == terms["par"]
    only_par.remove()
    vanilla = EnDRegularizer(model, "embedding", alpha=0.0, beta=0.0)
    model(x)
    terms = vanilla(target, bias)
    assert set(terms) == {"loss"} and terms["loss"].item() == 0.0
    assert set(vanilla(target, bias, all_terms=True)) == {"loss", "perp", "par"}


def test_unknown_layer_names_the_closest():
    with pytest.raises(ValueError, match="'embedding'"):
        find_layer(TwoLayerNet(), "embeding")


def test_terms_before_any_forward_pass_are_an_error():
    with pytest.raises(RuntimeError, match="run the model forward"):
        EnDRegularizer(TwoLayerNet(), "embedding")(torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def test_negative_weights_are_refused():
    with pytest.raises(ValueError, match=">= 0"):
        EnDRegularizer(TwoLayerNet(), "embedding", alpha=-0.1)


def test_official_pairs_are_about_half_of_all_cross_colour_pairs_and_change_the_value():
    features, target, bias = random_batch(11, n=64, classes=2, biases=5)
    official = end_terms(features, target, bias, par_pairs="official")["par"]
    every = end_terms(features, target, bias, par_pairs="all")["par"]
    assert official.item() != pytest.approx(every.item(), abs=1e-6)
    lower = torch.tril(torch.ones(64, 64, dtype=torch.bool), diagonal=-1)
    same = (target[:, None] == target[None, :]) & lower
    n_official = int((same & (bias[:, None] < bias[None, :])).sum())
    n_all = int((same & (bias[:, None] != bias[None, :])).sum())
    assert 0.35 < n_official / n_all < 0.65


def test_unknown_pair_rule_is_refused():
    features, target, bias = random_batch(0)
    with pytest.raises(ValueError, match="official"):
        end_terms(features, target, bias, par_pairs="some")


def test_unnormalised_similarity_is_the_plain_dot_product_and_equals_cosine_on_unit_rows():
    features = torch.randn(6, 4, dtype=torch.float64) * 0.3
    raw = pairwise_similarity(features, normalize=False)
    torch.testing.assert_close(raw, torch.tril(features @ features.T, diagonal=-1).clamp(-1, 1))
    unit = F.normalize(features, dim=1)
    torch.testing.assert_close(pairwise_similarity(unit, normalize=False), pairwise_similarity(features))
