"""One rule for every registry of the library: an unknown name is an error that lists every valid
name (names match exactly, so a typo never selects something else)."""

import pytest
import torch

from polyp_sam_hf.core.errors import ConfigError
from polyp_sam_hf.data.augment import FLIPS, add_flips
from polyp_sam_hf.data.prompts import PROMPT_MODE_REGISTRY, TRAINING_PROMPT_MODES, get_prompt_mode
from polyp_sam_hf.data.sources import SOURCES, get_source
from polyp_sam_hf.data.splits import SPLIT_PRESETS, get_split_preset
from polyp_sam_hf.evaluation.baselines import BASELINES, baseline_prediction
from polyp_sam_hf.evaluation.metrics import PROTOCOLS, get_protocol, score_logits
from polyp_sam_hf.models.attention import VISION_ATTENTION, set_vision_attention
from polyp_sam_hf.models.convert import ARCHS, get_arch
from polyp_sam_hf.models.mask_prompts import MASK_PROMPTS, set_mask_prompt
from polyp_sam_hf.models.weights import PACKAGES, fetch_checkpoint
from polyp_sam_hf.training.losses import LOSSES, get_loss
from polyp_sam_hf.training.strategies import STRATEGIES, get_strategy


@pytest.mark.parametrize("registry, ask", [
    (SOURCES, lambda name: get_source(name)),
    (SPLIT_PRESETS, lambda name: get_split_preset(name)),
    (BASELINES, lambda name: baseline_prediction(name, [[1, 1, 3, 3]], 5, 5)),
    (LOSSES, lambda name: get_loss(name)),
    (STRATEGIES, lambda name: get_strategy(name)),
    (ARCHS, lambda name: get_arch(name)),
    (PACKAGES, lambda name: fetch_checkpoint(name)),
    (VISION_ATTENTION, lambda name: set_vision_attention(torch.nn.Linear(1, 1), name)),
    (MASK_PROMPTS, lambda name: set_mask_prompt(torch.nn.Linear(1, 1), name)),
    (FLIPS, lambda name: add_flips(None, name)),
    (PROMPT_MODE_REGISTRY, lambda name: get_prompt_mode(name)),
    (TRAINING_PROMPT_MODES, lambda name: get_prompt_mode(name, training=True)),
    (PROTOCOLS, lambda name: get_protocol(name)),
    (PROTOCOLS, lambda name: score_logits(None, torch.zeros(2, 2, dtype=torch.bool).numpy(), name)),
], ids=["source", "split preset", "baseline", "loss", "strategy", "arch", "weights", "attention", "mask prompt",
        "flip", "prompt mode", "training prompt mode", "protocol", "protocol of the scorer"])
def test_an_unknown_name_lists_every_valid_one(registry, ask):
    # a near miss of a real name (its case changed): the error must not pick it
    near = next(iter(registry)).upper()
    with pytest.raises(ConfigError) as err:
        ask(near)
    message = str(err.value)
    assert near in message
    assert all(name in message for name in registry), message


def test_a_registry_refuses_two_entries_of_one_name():
    from types import SimpleNamespace

    from polyp_sam_hf.core.registry import by_name

    a, b = SimpleNamespace(name="a"), SimpleNamespace(name="b")
    assert list(by_name(a, b)) == ["a", "b"]
    with pytest.raises(ValueError, match="Duplicate names"):
        by_name(a, b, SimpleNamespace(name="a"))
