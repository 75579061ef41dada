"""fairkit.gan: the GAN stage fairgen and latent de-biasing share; checkpoints of fairgen.models.GAN runs load."""
import subprocess
import sys

import torch

from fairgen.models import GAN as FairgenGAN
from fairkit.gan import Model
from fairkit.nets.gan import GAN

CONFIG = {"Model": {"dim_z": 8, "ch": 2, "resolution": 32, "ema_start": 0}}


def test_config_model_is_the_net_with_explicit_arguments():
    torch.manual_seed(0)
    built = Model(CONFIG)
    net = GAN(dim_z=8, ch=2, resolution=32, ema_start=0)
    assert isinstance(FairgenGAN(CONFIG), GAN)
    assert {k: v.shape for k, v in built.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}


def test_fairgen_gan_checkpoint_loads_into_the_fairkit_model_strictly():
    torch.manual_seed(0)
    old = FairgenGAN(CONFIG)
    keys = set(old.state_dict())
    assert {k.split(".")[0] for k in keys} == {"generator", "discriminator", "generator_ema"}
    new = Model(CONFIG)
    new.load_state_dict(old.state_dict(), strict=True)
    z = torch.randn(3, 8)
    assert torch.equal(new.eval()(z), old.eval()(z))


def test_latentdebias_imports_no_other_method():
    code = ("import sys, latentdebias.iterators, latentdebias.scripts.table, latentdebias.scripts.pipeline; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'fairgen', 'end', 'iin', 'nullsample'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
