"""The five neuron-level unlearning methods on the session's memorizing TinyMem model: the top-k
units of the scores are silenced, exactly k per layer, the edit re-applies bit-identically; the
fixed reference behaviours (deviations.md D31, D35–D41) and the attribution cache."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from memlab.data.build import load_data
from memlab.data.lm_data import LMData
from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model
from memlab.models.build import load_trained_model
from memlab.models.edit import Edit
from memlab.models.mlp_adapter import MLPAdapter
from memlab.unlearn.activations import activation_scores
from memlab.unlearn.common import UnlearnContext, count_of, sequence_losses
from memlab.unlearn.gates import HardConcreteGates, SlimmingGates, train_gates
from memlab.unlearn.integrated_gradients import integrated_gradient_scores
from memlab.unlearn.methods import METHODS, NEURON_METHODS
from memlab.unlearn.neurons import AttributionCache, patched, replace_at
from memlab.unlearn.zero_out import zero_out_scores

CONF = Path(__file__).resolve().parents[1] / "conf" / "unlearn"
RATIO = 0.05  # 25 of 512 units per layer
# test-speed settings on top of each YAML (the invariants hold for any number of epochs / steps)
FORGET_ROWS = 4
FAST = {
    "zero_out": {"unit_chunk": 256},
    "activations": {},
    "slimming": {"epochs": 5},
    "hard_concrete": {"epochs": 5},
    "integrated_gradients": {"steps": 3, "prompt_len": 30},  # the last 9 positions of 40
}


@dataclass
class Setting:
    model: nn.Module
    data: LMData
    forget: torch.Tensor  # the memorized noised rows
    ctx: UnlearnContext
    eval_cfg: object
    before: dict


def method_cfg(name: str, **overrides):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    return OmegaConf.merge(cfg, {"ratio": RATIO, **FAST.get(name, {}), **overrides})


@pytest.fixture(scope="module")
def setting(tiny_run) -> Setting:
    data = load_data(tiny_run.cfg)
    model, _ = load_trained_model(tiny_run.ckpt, data)
    eval_cfg = tiny_run.cfg.eval
    before, result = evaluate_model(model, data, eval_cfg)
    forget = data.artifact.rows[result.memorized & result.evaluable]
    ctx = UnlearnContext(eval_cfg.prompt_len, eval_cfg.k, data.pad_id, data.eos_id, seed=0)
    assert len(forget) >= 3 and before["mem/perc"] > 0
    return Setting(model, data, forget, ctx, eval_cfg, before)


def run_method(s: Setting, name: str, **overrides) -> Edit:
    """The method on a copy of the model, with the first ``FORGET_ROWS`` forget rows (the
    invariants below hold for any forget set; fewer rows keep the test fast)."""
    cfg = method_cfg(name, **overrides)
    forget = s.forget[:FORGET_ROWS]
    return METHODS[name].edit(copy.deepcopy(s.model), forget, s.data.clean_train(), cfg, s.ctx)


def forget_loss(model: nn.Module, s: Setting) -> float:
    with torch.no_grad():
        return float(sequence_losses(model, s.forget, s.ctx.prompt_len).mean())


def test_every_neuron_method_of_the_table_is_tested():
    assert [n for n, m in METHODS.items() if m.family == "neuron"] == NEURON_METHODS
    assert set(NEURON_METHODS) == set(FAST)  # FAST lists the methods the next test runs


@pytest.mark.parametrize("name", list(FAST))
def test_method_silences_exactly_its_top_units_and_reapplies_bit_identically(
    setting, name, tmp_path
):
    s = setting
    adapter = MLPAdapter(s.model)
    edit = run_method(s, name, cache_dir=str(tmp_path))
    (cached,) = (tmp_path / name).glob("*.safetensors")  # the scores the edit was made from
    scores = AttributionCache(tmp_path, name).load(cached.stem)[0]
    assert scores.shape == (adapter.n_layer, adapter.inner)
    assert torch.isfinite(scores).all() and scores.std() > 0

    k = count_of(adapter.inner, RATIO)
    assert k == 25
    for layer, block in enumerate(adapter.blocks):  # exactly the k top-scored units of each layer
        keep_w = edit.masks[f"{block.fc_in_name}.weight"]
        dead = (~keep_w).all(dim=1 - block.unit_axis_in())
        assert torch.equal(dead, ~edit.masks[f"{block.fc_in_name}.bias"])
        assert int(dead.sum()) == k
        threshold = scores[layer].topk(k).values.min()
        assert (scores[layer][dead] >= threshold).all()
    hidden = adapter.blocks[0].fc_in.weight.shape[0]
    assert edit.n_changed == adapter.n_layer * k * (hidden + 1)
    assert edit.method == name and edit.hparams["ratio"] == RATIO

    edited = edit.apply(copy.deepcopy(s.model))
    params = dict(edited.named_parameters())
    for pname, keep in edit.masks.items():
        assert (params[pname][~keep] == 0).all()
    again = Edit.load(edit.save(tmp_path / "edit.safetensors")).apply(copy.deepcopy(s.model))
    twice = edit.apply(edit.apply(copy.deepcopy(s.model)))
    for pname, p in edited.named_parameters():
        assert torch.equal(p, dict(again.named_parameters())[pname])
        assert torch.equal(p, dict(twice.named_parameters())[pname])


def test_zero_out_drops_one_unit_and_scores_the_continuation_loss_increase(setting):
    """deviations.md D31: the score of unit j is the continuation-loss rise when only unit j is removed
    (checked against a real one-unit weight edit), not the reference's keep-only-j mask."""
    s = dataclasses.replace(setting, forget=setting.forget[:3])  # 3 rows keep it fast
    adapter = MLPAdapter(s.model)
    scores = zero_out_scores(s.model, s.forget, method_cfg("zero_out"), s.ctx)
    base = forget_loss(s.model, s)
    for layer, unit in [(0, int(scores[0].argmax())), (1, 7)]:
        edited = copy.deepcopy(s.model)
        Edit("probe", adapter.unit_mask(layer, torch.tensor([unit]))).apply(edited)
        assert scores[layer, unit].item() == pytest.approx(forget_loss(edited, s) - base, abs=1e-4)

    reference = zero_out_scores(
        s.model, s.forget, method_cfg("zero_out", compat="reference"), s.ctx
    )
    keep_only = copy.deepcopy(s.model)
    others = torch.tensor([j for j in range(adapter.inner) if j != 7])
    Edit("probe", adapter.unit_mask(1, others)).apply(keep_only)
    with torch.no_grad():
        whole = float(sequence_losses(keep_only, s.forget).mean())
        whole_base = float(sequence_losses(s.model, s.forget).mean())
    assert reference[1, 7].item() == pytest.approx(whole - whole_base, abs=1e-4)


def test_activation_scores_do_not_depend_on_the_batch_size(setting):
    """deviations.md D40: a plain mean over every row (the reference's per-slot average was biased by a
    partial last batch); batch size 1 works."""
    s = setting
    full = activation_scores(s.model, s.forget, method_cfg("activations"), s.ctx)
    single = activation_scores(s.model, s.forget, method_cfg("activations", batch_size=1), s.ctx)
    partial = activation_scores(s.model, s.forget, method_cfg("activations", batch_size=4), s.ctx)
    assert torch.allclose(full, single, atol=1e-5) and torch.allclose(full, partial, atol=1e-5)


def test_gate_training_checks_the_stop_at_the_reference_cadence_or_every_step(setting):
    """deviations.md D36: by default the stop check runs on epochs divisible by
    stop_check_epochs and skips the rest of that epoch; stop_check=step stops after the first
    step below stop_loss. deviations.md D35: compat=reference accumulates the epoch's gradients."""
    s = setting
    adapter = MLPAdapter(s.model)
    size = (len(s.forget) + 1) // 2  # two batches per epoch
    batches = -(-len(s.forget) // size)
    assert batches == 2
    hp = {**method_cfg("slimming", epochs=4, stop_loss=0.95, batch_size=size, stop_check_epochs=2)}

    def train(**overrides) -> dict:
        gates = SlimmingGates(adapter.n_layer, adapter.inner)
        return train_gates(s.model, gates, s.forget, {**hp, **overrides})

    cadence = train()  # epochs 2 and 4 end after their first step (the term starts at 1 > 0.95 …)
    assert cadence["stopped_early"] and cadence["steps"] == batches + 1 + batches + 1
    per_step = train(stop_check="step")
    assert per_step["stopped_early"] and per_step["steps"] == 1 and per_step["penalty"] < 0.95
    never = train(stop_check_epochs=100, compat="reference")
    assert not never["stopped_early"] and never["steps"] == 4 * batches
    assert all(p.requires_grad for p in s.model.parameters())  # model unfrozen afterwards
    with pytest.raises(ConfigError, match="unlearn.stop_check=often"):
        train(stop_check="often")


def test_hard_concrete_gates_are_stochastic_only_in_training():
    """deviations.md D37: deterministic masks at evaluation; init logit_p gives log(p/(1−p))."""
    hp = dict(OmegaConf.to_container(OmegaConf.load(CONF / "hard_concrete.yaml")))
    gates = HardConcreteGates(2, 16, {**hp, "mask_p": 0.8}, seed=0)
    p = (0.8 + 0.1) / 1.2
    assert torch.allclose(gates.logits, torch.full((2, 16), float(torch.tensor(p / (1 - p)).log())))
    gates.train()
    assert not torch.equal(gates.gate(0), gates.gate(0))
    gates.eval()
    assert torch.equal(gates.gate(0), gates.gate(0))
    expected = (torch.sigmoid(gates.logits[0]) * 1.2 - 0.1).clamp(0, 1)
    assert torch.allclose(gates.gate(0), expected)
    normal = HardConcreteGates(2, 16, {**hp, "init": "normal"}, seed=0)
    assert 0 < normal.logits.std() < 0.05


def test_integrated_gradients_are_complete(setting):
    """IG's completeness: over one position, Σ_j IG_j ≈ p(next | a) − p(next | a = 0), with the
    configured number of steps (the reference ignored it, deviations.md D38)."""
    s = setting
    row = s.forget[:1]
    T = row.shape[1]
    cfg = method_cfg("integrated_gradients", steps=200, prompt_len=T - 1)
    scores = integrated_gradient_scores(s.model, row, cfg, s.ctx)
    adapter = MLPAdapter(s.model)
    pos = torch.tensor([T - 2])
    for layer in range(adapter.n_layer):
        zero = torch.zeros(1, adapter.inner)
        with torch.no_grad():
            p_full = s.model(input_ids=row).logits[0, -2].softmax(-1)[row[0, -1]]
            with patched(adapter, {layer: replace_at(pos, zero)}):
                p_zero = s.model(input_ids=row).logits[0, -2].softmax(-1)[row[0, -1]]
        change = float(p_full - p_zero)  # a Riemann sum: within 10 % with 200 steps
        assert scores[layer].sum().item() == pytest.approx(change, rel=0.1, abs=2e-3)
    few = integrated_gradient_scores(
        s.model, row, method_cfg("integrated_gradients", steps=3, prompt_len=T - 1), s.ctx
    )
    assert not torch.allclose(few, scores)


def test_attribution_cache_serves_every_ratio(setting, tmp_path):
    """One attribution serves every ratio; anything that changes the scores misses
    (deviations.md D41)."""
    s = setting
    first = run_method(s, "activations", cache_dir=str(tmp_path), ratio=0.01)
    again = run_method(s, "activations", cache_dir=str(tmp_path), ratio=0.05)
    assert not first.hparams["cached"] and again.hparams["cached"]
    assert again.hparams["attribution_seconds"] == pytest.approx(
        first.hparams["attribution_seconds"]
    )
    assert first.n_changed * 5 == again.n_changed  # 5 vs 25 units per layer, same ranking
    for name, keep in again.masks.items():
        assert (keep <= first.masks[name]).all()  # the top 25 contain the top 5
    other = run_method(s, "activations", cache_dir=str(tmp_path), prompt_len=5)
    assert not other.hparams["cached"]
    assert len(list((tmp_path / "activations").glob("*.safetensors"))) == 2


def test_integrated_gradients_batch_size_counts_rows_and_leaves_the_scores_unchanged(setting):
    """deviations.md D39: ``batch_size`` counts forget rows; the scores do not depend on it."""
    s = setting
    rows = s.forget[:3]
    first = rows.shape[1] - 4  # three continuation positions keep it fast
    one = method_cfg("integrated_gradients", steps=3, prompt_len=first, batch_size=1)
    all_rows = method_cfg("integrated_gradients", steps=3, prompt_len=first, batch_size=3)
    by_one = integrated_gradient_scores(s.model, rows, one, s.ctx)
    together = integrated_gradient_scores(s.model, rows, all_rows, s.ctx)
    assert torch.allclose(by_one, together, rtol=1e-4, atol=1e-7)
    assert by_one.abs().sum() > 0
