"""The six weight-level methods: their mathematics on small tensors and
random tiny GPT-2 / GPT-NeoX models (no training needed for these properties)."""

from __future__ import annotations

import math

import pytest
import torch
from omegaconf import OmegaConf
from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.common import UnlearnContext, count_of, per_tensor_masks
from memlab.unlearn.durable import global_masks, summed_forget_gradient
from memlab.unlearn.greedy import iteration_count, zero_best_entry
from memlab.unlearn.methods import METHODS, WEIGHT_METHODS
from memlab.unlearn.second_order import BlockFisherInverse
from memlab.unlearn.subnet import Supermasks, SupermaskWeight

VOCAB, T = 14, 12


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=VOCAB, n_positions=T, n_embd=16, n_layer=2, n_head=2, use_cache=False
    )
    return GPT2LMHeadModel(cfg).eval()


def tiny_neox() -> GPTNeoXForCausalLM:
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=T,
        use_cache=False,
    )
    return GPTNeoXForCausalLM(cfg).eval()


MODELS = {"gpt2": tiny_gpt2, "neox": tiny_neox}


def rows(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, VOCAB, (n, T), generator=torch.Generator().manual_seed(seed))


CTX = UnlearnContext(prompt_len=4, k=4, pad_id=13, eos_id=11, seed=0)


def test_sherman_morrison_inverse_equals_explicit_inverse():
    d, block, damp, m = 11, 4, 0.05, 6
    grads = torch.randn(m, d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    inverse = BlockFisherInverse(d, block_size=block, damp=damp, num_grads=m, dtype=torch.float64)
    for g in grads:
        inverse.update(g)
    same_block = torch.arange(d).div(block, rounding_mode="floor")
    block_mask = (same_block[:, None] == same_block[None, :]).double()
    fisher = damp * torch.eye(d, dtype=torch.float64) + block_mask * (grads.T @ grads) / m
    explicit = torch.linalg.inv(fisher)
    rel = (inverse.dense() - explicit).norm() / explicit.norm()
    assert rel < 1e-6
    assert torch.allclose(inverse.diagonal(), explicit.diagonal(), rtol=1e-6)


def test_supermask_drops_exactly_floor_numel_ratio_and_passes_gradients_straight_through():
    weight = torch.randn(7, 9)
    mask = SupermaskWeight(weight, ratio=0.3, bound=0.5, generator=torch.Generator().manual_seed(0))
    assert mask.k == math.floor(63 * 0.3) == 18
    assert int((~mask.keep_mask()).sum()) == 18
    upstream = torch.randn(7, 9)
    (mask(weight) * upstream).sum().backward()
    # straight-through: d/dS of Σ upstream·W·M(|S|) is upstream·W·sign(S) at every entry
    expected = upstream * weight * mask.scores.detach().sign()
    assert torch.allclose(mask.scores.grad, expected)
    assert int((mask.scores.grad != 0).sum()) == 63  # dropped entries get gradients too


@pytest.mark.parametrize("arch", MODELS)
def test_supermasks_count_per_matrix_and_leave_the_model_unchanged(arch):
    model = MODELS[arch]()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with Supermasks(model, ratio=0.25, seed=0) as masks:
        keep = masks.keep_masks()
        logits = model(rows(2, 0)).logits
        logits.sum().backward()
        assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in masks.scores())
    weights = MLPAdapter(model).weight_matrices()
    assert set(keep) == set(weights)
    for name, k in keep.items():
        assert int((~k).sum()) == math.floor(weights[name].numel() * 0.25)
    after = dict(model.named_parameters())
    assert set(after) == set(before)
    assert all(torch.equal(before[n], after[n]) for n in before)


def test_global_ranking_versus_per_tensor_ranking():
    scores = {"a": torch.tensor([10.0, 9.0, 8.0, 7.0]), "b": torch.tensor([1.0, 2.0, 3.0, 4.0])}
    glob = global_masks(scores, 0.5)
    assert glob["a"].tolist() == [False] * 4 and glob["b"].tolist() == [True] * 4
    per = per_tensor_masks(scores, 0.5)
    assert per["a"].tolist() == [False, False, True, True]
    assert per["b"].tolist() == [True, True, False, False]


def test_global_ranking_breaks_ties_to_exactly_k():
    scores = {"a": torch.zeros(5), "b": torch.tensor([3.0, 0.0, 0.0])}
    keep = global_masks(scores, 0.5)  # k = 4: the 3.0, then three zeros in order
    assert int(sum((~m).sum() for m in keep.values())) == 4
    assert keep["b"].tolist() == [False, True, True]
    assert keep["a"].tolist() == [False, False, False, True, True]


@pytest.mark.parametrize("arch", MODELS)
def test_durable_ranks_per_tensor_and_aggregate_ranks_globally(arch):
    model, forget = MODELS[arch](), rows(10, 1)
    cfg = OmegaConf.create({"ratio": 0.1, "batch_size": 4})
    per = METHODS["durable"].edit(model, forget, forget[:0], cfg, CTX)
    agg = METHODS["durable_aggregate"].edit(model, forget, forget[:0], cfg, CTX)
    magnitude = {n: g.abs() for n, g in summed_forget_gradient(model, forget, 4).items()}
    for name, g in magnitude.items():
        k = count_of(g.numel(), 0.1)
        assert int((~per.masks[name]).sum()) == k
        if k:
            assert g[~per.masks[name]].min() >= g[per.masks[name]].max()
    flat = torch.cat([g.reshape(-1) for g in magnitude.values()])
    k = count_of(flat.numel(), 0.1)
    assert agg.n_changed == k
    dropped = torch.cat([(~agg.masks[n]).reshape(-1) for n in magnitude])
    assert torch.equal(
        dropped.nonzero().squeeze(1).sort().values, flat.topk(k).indices.sort().values
    )
    counts = [int((~m).sum()) for m in agg.masks.values()]
    assert counts != [count_of(g.numel(), 0.1) for g in magnitude.values()]  # not per tensor


def test_greedy_step_zeroes_only_a_positive_score():
    params = {"w": torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))}
    keep = {"w": torch.ones(3, dtype=torch.bool)}
    assert not zero_best_entry(params, {"w": -params["w"].detach()}, keep)  # scores −θ² ≤ 0
    assert params["w"].tolist() == [1.0, -2.0, 3.0] and keep["w"].all()
    assert zero_best_entry(params, {"w": torch.tensor([0.5, -2.0, -1.0])}, keep)  # scores .5, 4, −3
    assert params["w"].tolist() == [1.0, 0.0, 3.0]
    assert keep["w"].tolist() == [True, False, True]


@pytest.mark.parametrize("arch", MODELS)
def test_greedy_zeroes_at_most_one_entry_per_iteration(arch):
    model, forget, retain = MODELS[arch](), rows(6, 2), rows(10, 3)
    cfg = OmegaConf.create({"ratio": 1e-3, "batch_size": 8, "count": "all"})
    n_iter = iteration_count(model, 1e-3, "all")
    assert n_iter == math.ceil(1e-3 * sum(p.numel() for p in model.parameters()))
    mlp = MLPAdapter(model).parameters()
    edit = METHODS["greedy"].edit(model, forget, retain, cfg, CTX)
    assert 0 < edit.n_changed <= n_iter
    assert edit.hparams["zeroed"] == edit.n_changed
    for name, keep in edit.masks.items():
        assert (mlp[name][~keep] == 0).all()  # the model holds the zeros the edit describes


@pytest.mark.parametrize("arch", MODELS)
def test_second_order_zeroes_floor_numel_ratio_per_tensor(arch):
    model, forget = MODELS[arch](), rows(8, 4)
    cfg = OmegaConf.create(
        {"ratio": 0.05, "batch_size": 4, "num_grads": 6, "block_size": 5, "damp": 1e-4}
    )
    edit = METHODS["second_order"].edit(model, forget, forget[:0], cfg, CTX)
    mlp = MLPAdapter(model).parameters()
    assert set(edit.masks) == set(mlp)
    for name, keep in edit.masks.items():
        assert int((~keep).sum()) == count_of(mlp[name].numel(), 0.05)


# every weight method of the table and the test that runs it on a model
WEIGHT_TESTED = {
    "greedy": "test_greedy_zeroes_at_most_one_entry_per_iteration",
    "durable": "test_durable_ranks_per_tensor_and_aggregate_ranks_globally",
    "durable_aggregate": "test_durable_ranks_per_tensor_and_aggregate_ranks_globally",
    "second_order": "test_second_order_zeroes_floor_numel_ratio_per_tensor",
    "subnet": "test_subnet_methods_mask_weight_matrices_only",
    "balanced_subnet": "test_subnet_methods_mask_weight_matrices_only",
}


@pytest.mark.parametrize("name", ["subnet", "balanced_subnet"])
def test_subnet_methods_mask_weight_matrices_only(name):
    model, forget, retain = tiny_neox(), rows(8, 5), rows(16, 6)
    cfg = OmegaConf.create(
        {"ratio": 0.2, "epochs": 2, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
         "batch_size": 8, "loss_weighting": 0.7}
    )  # fmt: skip
    edit = METHODS[name].edit(model, forget, retain, cfg, CTX)
    weights = MLPAdapter(model).weight_matrices()
    assert set(edit.masks) == set(weights)
    for n, keep in edit.masks.items():
        assert int((~keep).sum()) == math.floor(weights[n].numel() * 0.2)


def test_weight_family_is_the_table_s_weight_rows():
    assert [n for n, m in METHODS.items() if m.family == "weight"] == WEIGHT_METHODS
    assert set(WEIGHT_METHODS) == set(WEIGHT_TESTED)
