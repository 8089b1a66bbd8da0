"""Train-time regularizers: the math of each, their checkpoint state, and exact resume."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from memlab.errors import ConfigError
from memlab.models.tinymem import build_tinymem
from memlab.regularizers.build import REGULARIZERS, attach_test_time, build_regularizers
from memlab.regularizers.example_tied_dropout import (
    ExampleTiedDropout,
    ExampleTiedMasks,
    transformer_blocks,
)
from memlab.regularizers.loss_truncation import LossTruncation
from memlab.regularizers.spectral_norm import SpectralNorm, power_iteration, sigma
from tests.helpers.configs import compose_config

TINY_MODEL = dict(n_layer=2, n_embd=64, n_head=4, n_inner=None, activation="relu", init_scale=0.8)


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_tinymem(OmegaConf.create(TINY_MODEL), 14, 24, 10, 11, 13)


def fake_module(model: torch.nn.Module, index: torch.Tensor | None = None) -> SimpleNamespace:
    return SimpleNamespace(model=model, example_index=index, log=lambda *a, **k: None)


# --- spectral norm ---------------------------------------------------------------------------


def test_power_iteration_converges_to_the_spectral_norm():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 48, 32, generator=g)
    u = torch.randn(5, 48, generator=g)
    for _ in range(100):  # one iteration per "step", as in training
        u, v = power_iteration(w, u, 1)
    exact = torch.linalg.matrix_norm(w, 2)
    assert torch.allclose(sigma(w, u, v), exact, rtol=0.01)


def test_spectral_norm_blocks_follow_the_reference_split_and_converge():
    model = tiny_model()
    reg = SpectralNorm(lam=0.1, seed=0, n_power_iter=100)
    s = reg.sigmas(model)
    assert s.numel() == 2 * 18  # per block: 12 QKV heads + 4 attention-output blocks + 2 MLP
    params = dict(model.named_parameters())
    exact = torch.cat(
        [torch.linalg.matrix_norm(b.view(params[b.name].detach()), 2) for b in reg.blocks(model)]
    )
    assert torch.allclose(s.detach(), exact, rtol=0.01)
    qkv = reg.blocks(model)[0]
    assert (qkv.name, qkv.axis, qkv.n) == ("transformer.h.0.attn.c_attn.weight", "cols", 12)


def test_spectral_penalty_gradient_flows_through_w_only():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(2, 16, 8, generator=g, requires_grad=True)
    u0 = torch.randn(2, 16, generator=g, requires_grad=True)
    u, v = power_iteration(w, u0, 3)
    assert not u.requires_grad and not v.requires_grad
    sigma(w, u, v).sum().backward()
    assert u0.grad is None  # nothing flows into the power-iteration vectors
    assert torch.allclose(w.grad, u[:, :, None] * v[:, None, :])  # d(uᵀWv)/dW = u vᵀ


@pytest.mark.parametrize("squared", [False, True])
def test_spectral_penalty_is_half_lambda_times_the_sum(squared):
    model = tiny_model()
    reg, twin = SpectralNorm(lam=0.2, squared=squared), SpectralNorm(lam=0.2, squared=squared)
    penalty = reg.penalty(fake_module(model))
    s = twin.sigmas(model)
    expected = 0.1 * ((s * s).sum() if squared else s.sum())
    assert torch.allclose(penalty, expected)
    penalty.backward()
    assert model.transformer.h[0].mlp.c_fc.weight.grad is not None
    assert model.transformer.wte.weight.grad is None  # embeddings are not regularized


def test_spectral_vectors_survive_a_checkpoint_round_trip(tmp_path):
    model = tiny_model()
    reg = SpectralNorm(lam=0.1, seed=3)
    for _ in range(5):
        reg.sigmas(model)
    torch.save(reg.state_dict(), tmp_path / "state.pt")
    restored = SpectralNorm(lam=0.1, seed=99)  # a different seed: the saved vectors must win
    restored.load_state_dict(torch.load(tmp_path / "state.pt"))
    assert torch.equal(reg.sigmas(model), restored.sigmas(model))


# --- loss truncation -------------------------------------------------------------------------


def periodic_stream(period: int, n_batches: int, batch: int) -> list[torch.Tensor]:
    """Losses perm[t mod period]: once full, the ring buffer always holds {0, …, period−1}."""
    perm = torch.randperm(period, generator=torch.Generator().manual_seed(0)).float()
    t = torch.arange(n_batches * batch) % period
    return list(perm[t].split(batch))


def test_loss_truncation_drops_exactly_the_top_fraction_once_warm():
    trunc = LossTruncation(dropc=0.1, buffer_size=1000, min_count=1000, recompute=1000)
    stream = periodic_stream(1000, 40, 50)
    masks = [trunc.update(batch) for batch in stream]
    warmup = masks[:20]  # 1000 samples: no cut-off yet (first refresh needs > 1000 samples)
    assert all(bool(m.all()) for m in warmup)
    warm_losses, warm_masks = torch.cat(stream[20:]), torch.cat(masks[20:])
    assert float(trunc.cutoff) == pytest.approx(0.9 * 999)  # linear-interpolated 90th percentile
    assert warm_masks.sum() == 0.9 * warm_losses.numel()  # exactly 10 % dropped
    assert warm_losses[warm_masks == 0].min() > warm_losses[warm_masks == 1].max()  # the top ones


def test_loss_truncation_state_survives_a_checkpoint_round_trip(tmp_path):
    stream = periodic_stream(300, 30, 32)
    uninterrupted = LossTruncation(dropc=0.05, buffer_size=300, min_count=300, recompute=200)
    expected = [uninterrupted.update(b) for b in stream]
    first = LossTruncation(dropc=0.05, buffer_size=300, min_count=300, recompute=200)
    got = [first.update(b) for b in stream[:13]]
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = LossTruncation(dropc=0.05, buffer_size=300, min_count=300, recompute=200)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt"))
    got += [resumed.update(b) for b in stream[13:]]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert sum(float((1 - m).sum()) for m in got) > 0  # truncation was active


# --- example-tied dropout --------------------------------------------------------------------


def test_example_tied_masks_are_fixed_per_example_and_keep_the_shared_units():
    masks = ExampleTiedMasks(p_fixed=0.2, p_mem=0.1, seed=7)
    h, n_fixed, n_mem = 128, 25, round(0.1 * 103)
    state = torch.get_rng_state()
    epoch1 = masks.train_mask(torch.tensor([3, 8, 5]), h)
    epoch2 = masks.train_mask(torch.tensor([5, 0, 3]), h)  # another batch, another epoch
    assert torch.equal(
        torch.get_rng_state(), state
    )  # the global RNG is never touched (deviations.md D20)
    assert torch.equal(epoch1[0], epoch2[2]) and torch.equal(epoch1[2], epoch2[0])
    assert not torch.equal(epoch1[0], epoch1[1])  # different examples, different masks
    assert epoch1[:, :n_fixed].all()  # the shared generalization units
    assert (epoch1.sum(1) == n_fixed + n_mem).all()  # plus exactly the p_mem share of the rest
    many = masks.train_mask(torch.arange(2000), h)[:, n_fixed:].float().mean(0)
    assert many.min() > 0.05 and many.max() < 0.15  # every memorization unit is used ~p_mem
    assert not torch.equal(ExampleTiedMasks(seed=8).train_mask(torch.tensor([3]), h)[0], epoch1[0])


def manual_block_scaling(model: torch.nn.Module, scale: torch.Tensor) -> list:
    """An independent implementation: multiply every block input by ``scale`` [B or 1, H]."""
    return [
        blk.register_forward_pre_hook(lambda m, args: (args[0] * scale[:, None, :], *args[1:]))
        for blk in transformer_blocks(model)
    ]


def test_example_tied_dropout_train_and_eval_forwards():
    model, x = (
        tiny_model(),
        torch.randint(0, 14, (3, 24), generator=torch.Generator().manual_seed(0)),
    )
    x[2] = x[0]  # the same example twice in one batch
    module = fake_module(model)
    etd = ExampleTiedDropout(p_fixed=0.2, p_mem=0.1, seed=0)
    etd.setup(None, module, "fit")
    with torch.no_grad():
        module.example_index = torch.tensor([4, 9, 4])
        train_out = model.train()(input_ids=x).logits
        module.example_index = None
        eval_out = model.eval()(input_ids=x).logits  # no index needed at evaluation
    for handle in getattr(model, ExampleTiedDropout.HANDLES):
        handle.remove()
    mask = etd.masks.train_mask(torch.tensor([4, 9, 4]), 64).float()
    gen_only = torch.zeros(1, 64)
    gen_only[:, : int(0.2 * 64)] = (0.2 + 0.1) / 0.2
    with torch.no_grad():
        hooks = manual_block_scaling(model, mask)
        assert torch.allclose(model.train()(input_ids=x).logits, train_out, atol=1e-6)
        [h.remove() for h in hooks]
        hooks = manual_block_scaling(model, gen_only)
        assert torch.allclose(model.eval()(input_ids=x).logits, eval_out, atol=1e-6)
        [h.remove() for h in hooks]
        assert not torch.allclose(model.eval()(input_ids=x).logits, eval_out, atol=1e-3)
    assert torch.allclose(train_out[0], train_out[2])  # same example, same mask


def test_example_tied_dropout_reference_compat_masks_positions():
    etd = ExampleTiedDropout(p_fixed=0.2, p_mem=0.1, seed=0, compat="reference")
    hidden = torch.ones(2, 20, 8)
    train = etd.apply(hidden, torch.tensor([0, 1]), training=True)
    assert (train[:, :4] == 1).all()  # the first ⌊0.2·T⌋ positions are always kept
    assert ((train == 0).all(-1) | (train == 1).all(-1)).all()  # whole positions kept or dropped
    evaluated = etd.apply(hidden, None, training=False)
    assert torch.allclose(evaluated[:, :4], torch.tensor(1.5)) and (evaluated[:, 4:] == 0).all()


# --- resume: a stopped and resumed run ends where an uninterrupted one does ------------------

FAST = ["debug=fast", "~callbacks.progress_bar", "results=false", "trainer.max_epochs=2"]
REGULARIZER_SETTINGS = {
    "spectral_norm": ["regularizer=spectral_norm", "regularizer.lam=0.1"],
    "loss_truncation": [
        "regularizer=loss_truncation",
        "regularizer.dropc=0.2",
        "regularizer.buffer_size=100",
        "regularizer.min_count=100",
        "regularizer.recompute=150",
    ],
    "example_tied_dropout": ["regularizer=example_tied_dropout"],
}


def test_every_regularizer_config_builds_its_callback(tmp_path):
    built = {}
    for name in REGULARIZERS:
        cfg = compose_config("train", [f"regularizer={name}"], tmp_path).regularizer
        built[name] = [type(cb).__name__ for cb in build_regularizers(cfg, 0)]
    assert built == {
        "none": [],
        "example_tied_dropout": ["ExampleTiedDropout"],
        "loss_truncation": ["LossTruncation"],
        "spectral_norm": ["SpectralNorm"],
    }
    with pytest.raises(ConfigError, match="regularizer.name=dropout: unknown regularizer; known"):
        build_regularizers(OmegaConf.create({"name": "dropout"}), 0)


@pytest.mark.parametrize("compat", ["none", "reference"])
def test_a_reloaded_example_tied_dropout_model_gets_its_test_time_mask_back(compat):
    """The hooks are not part of the weights: attach_test_time re-attaches them from the run config
    saved in the checkpoint; the sequence-axis variant asks for the generation metric (D23)."""
    model, x = (
        tiny_model(),
        torch.randint(0, 14, (2, 24), generator=torch.Generator().manual_seed(1)),
    )
    reg = {"name": "example_tied_dropout", "p_fixed": 0.2, "p_mem": 0.1, "compat": compat}
    etd = ExampleTiedDropout(p_fixed=0.2, p_mem=0.1, seed=5, compat=compat)
    with torch.no_grad():
        plain = model.eval()(input_ids=x).logits
        etd.attach(model, lambda: None)
        expected = model(input_ids=x).logits
        for handle in getattr(model, ExampleTiedDropout.HANDLES):
            handle.remove()
        attach_test_time(model, {"seed": 5, "regularizer": reg})
        assert torch.equal(model(input_ids=x).logits, expected)
        assert not torch.allclose(expected, plain, atol=1e-3)
    assert getattr(model, ExampleTiedDropout.NEEDS_GENERATION) is (compat == "reference")
    untouched = tiny_model()
    attach_test_time(untouched, {"seed": 5, "regularizer": {"name": "spectral_norm", "lam": 0.1}})
    assert not hasattr(untouched, ExampleTiedDropout.HANDLES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(REGULARIZER_SETTINGS))
def test_resumed_regularized_run_matches_an_uninterrupted_one(tmp_path, name):
    from memlab.train import run

    overrides = [*FAST, *REGULARIZER_SETTINGS[name]]
    whole = run(compose_config("train", overrides, tmp_path / "whole"))
    stopped = compose_config("train", [*overrides, "trainer.max_epochs=1"], tmp_path / "part")
    run(stopped)
    last = tmp_path / "part" / "run" / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=False)["callbacks"]
    assert name == "example_tied_dropout" or any(
        k in state for k in ("SpectralNorm", "LossTruncation")
    )
    resumed = run(compose_config("train", [*overrides, f"ckpt_path={last}"], tmp_path / "part"))
    for key in ("train/loss", "mem/perc", "util/loss/7", "util/acc_mean"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-5), key
