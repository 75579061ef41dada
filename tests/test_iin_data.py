"""IIN's datasets: the original release's class paths, the pair facts of ColorfulMNIST and FactorCelebA,
colouring, dequantisation and fixed test pairs."""
import numpy as np
import pytest
import torch

from edflow.util import get_obj_from_str
from fairkit.data import DatasetNotFoundError
from fairkit.data.fixtures import write_celeba, write_cifar10
from iin import data

CLASS_PATHS = [f"iin.data.{name}{split}" for name in ("MNIST", "FashionMNIST", "CIFAR10", "CelebA", "ColorfulMNIST",
                                                      "SingleColorfulMNIST", "FactorCelebA")
               for split in ("Train", "Test")]
RELEASE_PATHS = ["iin.models.ae.Model", "iin.losses.ae.LossPND", "iin.iterators.ae.Trainer",
                 "iin.models.iin.VectorTransformer", "iin.losses.iin.Loss", "iin.iterators.iin.Trainer",
                 "iin.models.iin.FactorTransformer", "iin.losses.iin.FactorLoss", "iin.iterators.iin.FactorTrainer",
                 "iin.models.clf.Model", "iin.iterators.clf.Trainer"]


@pytest.mark.parametrize("path", CLASS_PATHS + RELEASE_PATHS)
def test_the_original_release_class_paths_exist(path):
    assert isinstance(get_obj_from_str(path), type)


def mnist_or_skip(cls, **kwargs):
    try:
        return cls(**kwargs)
    except DatasetNotFoundError as error:
        pytest.skip(str(error).splitlines()[0])


def test_mnist_train_is_dequantised_and_test_is_not():
    train = mnist_or_skip(data.MNISTTrain, subset=50)
    test = mnist_or_skip(data.MNISTTest, subset=50)
    batch = train.get_batch(np.arange(50))
    assert batch["image"].shape == (50, 1, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["image"].min() >= -1 and batch["image"].max() < 1
    # one u per image: the dequantisation offset is the same for every pixel of an image
    resized = torch.nn.functional.interpolate(train.arrays["image"][:50, None].float(), size=32, mode="bilinear",
                                              antialias=False)
    offsets = (batch["image"] + 1) * 128 - resized
    assert torch.allclose(offsets.amax((1, 2, 3)), offsets.amin((1, 2, 3)), atol=1e-3)
    assert ((offsets[:, 0, 0, 0] >= 0) & (offsets[:, 0, 0, 0] < 1)).all()
    assert torch.equal(test.get_batch(np.arange(5))["image"], test.get_batch(np.arange(5))["image"])


@pytest.fixture(scope="module")
def colour_pairs():
    config = {"data_root": "/nonexistent"}  # MNIST falls back to the installed files
    return (mnist_or_skip(data.ColorfulMNISTTrain, config=config, subset=500),
            mnist_or_skip(data.ColorfulMNISTTest, config=config, subset=300))


def test_colorful_mnist_pairs_share_digit_or_colour(colour_pairs):
    train, _ = colour_pairs
    torch.manual_seed(0)
    batch = train.get_batch(np.arange(200))
    factor = batch["factor"].numpy()
    first, second = batch["example1"], batch["example2"]
    assert set(np.unique(factor)) == {0, 1} and 0.35 < factor.mean() < 0.65
    same_digit = first["class"].numpy() == second["class"].numpy()
    assert same_digit[factor == 0].all()
    assert not same_digit[factor == 1].all()
    same_colour = torch.all(first["color"] == second["color"], dim=1).numpy()
    assert same_colour[factor == 1].all() and not same_colour[factor == 0].any()
    assert first["image"].shape == (200, 3, 32, 32)
    assert train.n_factors == 3 and train.residual_index == 2


def test_colorful_mnist_image_is_the_digit_times_its_colour(colour_pairs):
    _, test = colour_pairs
    batch = test.get_batch(np.arange(20))["example1"]
    gray = test.digits.get_batch(np.arange(20))["image"]  # (20, 1, 32, 32) in [-1, 1]
    expected = gray * batch["color"][:, :, None, None]
    assert torch.allclose(batch["image"], expected)
    assert (batch["color"] >= 0).all() and (batch["color"] <= 1).all()


def test_test_pairs_and_colours_are_fixed_by_a_seed(colour_pairs):
    _, test = colour_pairs
    again = data.ColorfulMNISTTest(config={"data_root": "/nonexistent"}, subset=300)
    indices = np.array([3, 17, 250])
    a, b = test.get_batch(indices), again.get_batch(indices)
    assert torch.equal(a["factor"], b["factor"])
    assert torch.equal(a["example2"]["image"], b["example2"]["image"])
    torch.manual_seed(123)
    assert torch.equal(test.get_batch(indices)["example1"]["image"], a["example1"]["image"])
    example = test[3]
    assert set(example) >= {"factor", "example1", "example2"}
    assert np.array_equal(example["example2"]["image"], a["example2"]["image"][0].numpy())


def test_single_colorful_mnist_draws_fresh_colours_in_training():
    train = mnist_or_skip(data.SingleColorfulMNISTTrain, config={}, subset=100)
    test = mnist_or_skip(data.SingleColorfulMNISTTest, config={}, subset=100)
    first, second = train.get_batch(np.arange(10)), train.get_batch(np.arange(10))
    assert not torch.equal(first["color"], second["color"])
    assert torch.equal(first["class"], second["class"])
    assert torch.equal(test.get_batch(np.arange(10))["color"], test.get_batch(np.arange(10))["color"])
    assert set(test[0]) >= {"image", "class", "color"} and test[0]["image"].shape == (3, 32, 32)


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fixture = write_celeba(root / "celeba", n=36, seed=1)
    return root, fixture


def test_factor_celeba_partners_share_the_factor_attribute(celeba_root):
    root, fixture = celeba_root
    config = {"data_root": str(root), "spatial_size": 16}
    train = data.FactorCelebATrain(config)
    torch.manual_seed(0)
    names = ["Eyeglasses", "Male", "No_Beard", "Smiling"]
    columns = [list(fixture_names()).index(n) for n in names]
    attributes = train.faces.labels["attributes"]
    for i in range(len(train)):
        example = train[i]
        f = int(example["factor"])
        partner_attributes = example["example2"]["attributes"]
        assert partner_attributes[columns[f]] == attributes[i, columns[f]]
        assert example["example1"]["image"].shape == (3, 16, 16)
    assert train.n_factors == 5 and train.residual_index == 4 and train.factor_names[-1] == "residual"
    test = data.FactorCelebATest(config)
    again = data.FactorCelebATest(config)
    assert np.array_equal(test.factor, again.factor) and np.array_equal(test.partner, again.partner)


def fixture_names():
    from fairkit.data import CELEBA_ATTRIBUTES

    return CELEBA_ATTRIBUTES


def test_celeba_and_cifar_read_the_per_dataset_folders(tmp_path):
    write_celeba(tmp_path / "celeba", n=12)
    write_cifar10(tmp_path / "cifar10", n_per_batch=2)
    config = {"data_root": str(tmp_path)}
    celeba = data.CelebATrain(config)
    assert celeba[0]["image"].shape == (3, 64, 64) and celeba[0]["attributes"].shape == (40,)
    assert len(data.CelebATest(config)) == 2
    cifar = data.CIFAR10Test(config)
    assert len(cifar) == 2 and cifar.get_batch([0, 1])["image"].shape == (2, 3, 32, 32)
    with pytest.raises(DatasetNotFoundError):
        data.CIFAR10Train({"data_root": str(tmp_path / "nothing")})
