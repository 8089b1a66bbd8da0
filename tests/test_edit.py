"""Edit round trip (deviations.md D55): save → load → apply on a fresh copy of the trained model
gives bit-identical weights and identical metrics."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from memlab.data.build import load_data
from memlab.metrics.evaluate import evaluate_model
from memlab.models.build import load_trained_model
from memlab.models.edit import Edit
from memlab.unlearn.common import UnlearnContext
from memlab.unlearn.methods import METHODS


def test_edit_round_trip_is_bit_identical(tiny_run, tmp_path):
    data = load_data(tiny_run.cfg)
    model, run_cfg = load_trained_model(tiny_run.ckpt, data)
    cfg = OmegaConf.create({"ratio": 0.02, "batch_size": 64})
    ctx = UnlearnContext(run_cfg.eval.prompt_len, run_cfg.eval.k, data.pad_id, data.eos_id)
    forget = data.artifact.rows[:8]  # a few rows give the same round trip
    edit = METHODS["durable_aggregate"].edit(model, forget, data.train[:0], cfg, ctx)
    edit.seconds = 1.25
    edit.apply(model)
    path = edit.save(tmp_path / "edit.safetensors")
    assert path.stat().st_size < 4 * edit.n_changed + 4096  # flat int32 indices + a header

    loaded = Edit.load(path)
    assert (loaded.method, loaded.hparams, loaded.seconds) == (
        "durable_aggregate",
        edit.hparams,
        1.25,
    )
    assert set(loaded.masks) == set(edit.masks)
    assert all(torch.equal(loaded.masks[n], edit.masks[n]) for n in edit.masks)
    assert loaded.n_changed == edit.n_changed > 0

    fresh, _ = load_trained_model(tiny_run.ckpt, data)
    loaded.apply(fresh)
    edited = dict(model.named_parameters())
    for name, p in fresh.named_parameters():
        assert torch.equal(p, edited[name]), name
    assert (
        evaluate_model(fresh, data, run_cfg.eval)[0] == evaluate_model(model, data, run_cfg.eval)[0]
    )


def test_merged_edit_zeroes_the_union():
    a = Edit("a", {"w": torch.tensor([True, False, True])})
    b = Edit("b", {"w": torch.tensor([True, True, False]), "v": torch.tensor([False])})
    both = a.merged(b)
    assert both.masks["w"].tolist() == [True, False, False]
    assert both.n_changed == 3
