"""The MLP adapter addresses layers by module path (deviations.md D32): ablating
unit j of layer l changes exactly that unit's FFN-in weights and bias in layer l — on GPT-2
(Conv1D, (in, out)) and GPT-NeoX (Linear, (out, in)) alike, and for ≥ 10 layers, where the
reference's substring lookup sent layers 0–9 to the wrong place."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from memlab.errors import ConfigError
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.neuron.ablation import ablate_top_units, units_per_layer
from memlab.unlearn.neuron.patching import capture, patched

N_LAYER, HIDDEN, INNER, VOCAB = 12, 16, 64, 32


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=32,
        n_embd=HIDDEN,
        n_layer=N_LAYER,
        n_head=2,
        n_inner=INNER,
        bos_token_id=0,
        eos_token_id=1,
    )
    return nonzero(GPT2LMHeadModel(cfg))


def tiny_neox() -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=N_LAYER,
        num_attention_heads=2,
        intermediate_size=INNER,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=1,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.25,
        },
    )
    return nonzero(GPTNeoXForCausalLM(cfg))


def nonzero(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter entry non-zero (HF zero-initialises biases), so each zeroed entry shows."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.rand_like(p) * 0.1 + 0.05)
    return model.eval()


MODELS = {"gpt2": tiny_gpt2, "gpt_neox": tiny_neox}
FC_IN = {"gpt2": "transformer.h.{}.mlp.c_fc", "gpt_neox": "gpt_neox.layers.{}.mlp.dense_h_to_4h"}


def changed_entries(before: dict, after: dict) -> dict[str, torch.Tensor]:
    """Parameter name → indices of the entries an edit changed."""
    out = {}
    for name, old in before.items():
        diff = (old != after[name]).nonzero()
        if diff.numel():
            out[name] = diff
    return out


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox"])
@pytest.mark.parametrize("layer, unit", [(1, 5), (4, 0), (10, 63)])
def test_unit_mask_touches_only_that_unit(arch, layer, unit):
    model = MODELS[arch]()
    adapter = MLPAdapter(model)
    assert adapter.arch == arch and adapter.n_layer == N_LAYER and adapter.inner == INNER
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    Edit("probe", adapter.unit_mask(layer, torch.tensor([unit]))).apply(model)
    after = dict(model.named_parameters())
    changed = changed_entries(before, after)
    prefix = FC_IN[arch].format(layer)
    assert set(changed) == {f"{prefix}.weight", f"{prefix}.bias"}
    unit_axis = 1 if arch == "gpt2" else 0
    weight_hits = changed[f"{prefix}.weight"]
    assert (weight_hits[:, unit_axis] == unit).all()
    assert len(weight_hits) == HIDDEN  # every input weight of the unit (all were non-zero)
    assert changed[f"{prefix}.bias"].flatten().tolist() == [unit]
    assert (after[f"{prefix}.weight"].select(unit_axis, unit) == 0).all()
    assert after[f"{prefix}.bias"][unit] == 0


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox"])
def test_shared_ablation_silences_each_layers_own_top_unit(arch):
    model = MODELS[arch]()
    adapter = MLPAdapter(model)
    top = torch.tensor([(7 * layer + 3) % INNER for layer in range(N_LAYER)])
    scores = torch.rand(N_LAYER, INNER)
    scores[torch.arange(N_LAYER), top] = 2.0  # one clear winner per layer
    edit = ablate_top_units(model, scores, 1 / INNER, "probe")
    assert edit.n_changed == N_LAYER * (HIDDEN + 1)
    edit.apply(model)
    acts = {}
    hooks = {i: capture(lambda a, i=i: acts.__setitem__(i, a.detach())) for i in range(N_LAYER)}
    with patched(adapter, hooks), torch.no_grad():
        model(input_ids=torch.randint(0, VOCAB, (3, 10)))
    for layer in range(N_LAYER):
        silent = (acts[layer].abs().amax(dim=(0, 1)) == 0).nonzero().flatten().tolist()
        assert silent == [int(top[layer])], f"layer {layer}"


def test_k_is_floor_of_inner_times_ratio():
    assert [units_per_layer(512, r) for r in (0.0, 0.001, 0.01, 0.05, 1.0)] == [0, 0, 5, 25, 512]
    assert units_per_layer(100, 0.29) == 29  # not 28 from 100 * 0.29 = 28.999…


@pytest.mark.parametrize("ratio", [-0.1, 1.5, "many"])
def test_ratio_outside_unit_interval_is_one_config_error(ratio):
    model = tiny_gpt2()
    with pytest.raises(ConfigError) as err:
        ablate_top_units(model, torch.zeros(N_LAYER, INNER), ratio, "probe")
    message = str(err.value)
    assert "\n" not in message and "unlearn.ratio" in message and "[0, 1]" in message
