"""fairgen's GAN model: the EMA generator is part of the state dict (so later stages and the sampler get it),
always samples in eval mode, and a conditional GAN samples the reference class."""
import torch

from fairgen.models import GAN, AttributeClassifier

TINY = {"Model": {"dim_z": 8, "ch": 2, "resolution": 32, "ema_decay": 0.5, "ema_start": 2}}


def test_ema_generator_is_saved_and_restored_with_the_model():
    torch.manual_seed(0)
    gan = GAN(TINY)
    assert any(key.startswith("generator_ema.") for key in gan.state_dict())
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.add_(1.0)
    gan.update_ema(step=5)  # after ema_start: halfway, with decay 0.5
    restored = GAN(TINY)
    restored.load_state_dict(gan.state_dict())
    z = torch.randn(4, 8)
    torch.testing.assert_close(restored(z), gan(z))


def test_ema_copies_the_weights_before_its_start_step():
    torch.manual_seed(0)
    gan = GAN(TINY)
    with torch.no_grad():
        for p in gan.generator.parameters():
            p.mul_(1.5)
    gan.update_ema(step=1)
    for (name, p), p_ema in zip(gan.generator.named_parameters(), gan.generator_ema.parameters()):
        torch.testing.assert_close(p_ema, p.detach(), msg=name)


def test_training_mode_leaves_the_ema_generator_in_eval_mode():
    gan = GAN(TINY).train()
    assert gan.generator.training and not gan.generator_ema.training


def test_conditional_gan_samples_the_reference_class_by_default():
    torch.manual_seed(0)
    gan = GAN({"Model": {**TINY["Model"], "conditional": True}})
    assert gan.reference_labels(3).tolist() == [1, 1, 1]
    seed = torch.Generator().manual_seed(1)
    images, z = gan.sample(5, batch_size=2, generator=seed)
    assert images.shape == (5, 3, 32, 32) and z.shape == (5, 8)
    torch.testing.assert_close(images, gan(z, torch.ones(5, dtype=torch.long)))
    other, same_z = gan.sample(5, batch_size=2, generator=torch.Generator().manual_seed(1), y=0)
    torch.testing.assert_close(same_z, z)
    torch.testing.assert_close(other, gan(z, torch.zeros(5, dtype=torch.long)))


def test_attribute_classifier_groups_are_the_predicted_bits_as_a_binary_number():
    classifier = AttributeClassifier({"Model": {"width": 4, "blocks": [1], "attributes": ["colour", "digit_group"]}})
    logits = torch.tensor([[-1.0, -2.0], [-1.0, 3.0], [2.0, -1.0], [1.0, 1.0]])
    classifier.forward = lambda x: logits  # the decision rule alone
    assert classifier.predict_groups(torch.zeros(4), ["colour", "digit_group"]).tolist() == [0, 1, 2, 3]
    assert classifier.predict_groups(torch.zeros(4), ["digit_group", "colour"]).tolist() == [0, 2, 1, 3]
    assert classifier.predict_groups(torch.zeros(4), ["colour"]).tolist() == [0, 0, 1, 1]
