"""The audit task (memlab.audit): constructed cases for each audit, and the entry point's keys."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from omegaconf import OmegaConf

from memlab.audit.extract import extraction_curves
from memlab.audit.mia import ATTACKS, membership_inference
from memlab.audit.oracle import without_rows
from memlab.audit.quant import block_weights, fake_quantize, quantized_copy
from memlab.audit.relearn import KINDS, relearn_curve, uses_lora
from memlab.audit.runner import audit_sets, run
from memlab.data.lm_data import ArtifactSet
from memlab.metrics.evaluate import evaluate_model, memorization
from memlab.metrics.forward import logits_of, token_losses
from memlab.models.edit import Edit
from memlab.unlearn.subject import load_subject
from tests.helpers.configs import compose_config
from tests.helpers.planted import random_rows, tiny_neox, train_planted

MIA = OmegaConf.create({"min_k": 0.2, "fpr": 0.01, "over_unlearning_below": 0.4})
WINDOW = OmegaConf.create({"prompt_len": 32, "k": 32, "batch_size": 64, "suppress_eos": True})


def audit_config(tmp, ckpt, *overrides):
    return compose_config("audit", [f"ckpt={ckpt}", "results=false", *overrides], tmp)


def natural(rows: torch.Tensor) -> ArtifactSet:
    return ArtifactSet("natural", rows, rows, [torch.arange(len(rows))], [0])


@pytest.fixture(scope="module")
def subject(tiny_run, tmp_path_factory):
    cfg = audit_config(tmp_path_factory.mktemp("audit"), tiny_run.ckpt)
    return cfg, load_subject(cfg)


def test_mia_separates_members_of_a_memorizing_model_and_not_of_an_untrained_one(tmp_path):
    planted = train_planted(tmp_path, n_planted=32, steps=60)
    members, nonmembers = natural(planted.planted), natural(planted.unseen[:32])
    trained = membership_inference(
        planted_model(planted), members, nonmembers, WINDOW, eos_id=0, mia_cfg=MIA
    )
    torch.manual_seed(7)
    untrained = membership_inference(
        tiny_neox(), members, nonmembers, WINDOW, eos_id=0, mia_cfg=MIA
    )
    for attack in ATTACKS:
        assert trained[f"audit/mia/{attack}/auc"] > 0.95
        assert abs(untrained[f"audit/mia/{attack}/auc"] - 0.5) < 0.3  # 32 vs 32 rows: sd ≈ 0.07


def planted_model(planted):
    from transformers import GPTNeoXForCausalLM

    return GPTNeoXForCausalLM.from_pretrained(planted.model_dir).eval()


def test_extraction_at_the_full_window_equals_memorization_and_falls_with_k(subject):
    cfg, subj = subject
    data = subj.data
    curves = extraction_curves(subj.model, data.artifact, subj.eval_cfg, data.eos_id, [0.1])
    metrics, _ = evaluate_model(subj.model, data, subj.eval_cfg)
    k = int(subj.eval_cfg.k)
    assert curves[f"audit/extract/k{k}/perc"] == pytest.approx(metrics["mem/perc"])
    curve = [curves[f"audit/extract/k{i}/perc"] for i in range(1, k + 1)]
    assert curve == sorted(curve, reverse=True)
    assert metrics["mem/perc"] > 0  # the constructed case memorizes


def ascend_until_forgotten(model, members, heldout, subj, lr: float = 3e-3):
    """Gradient ascent on the forget rows until no held-out row is memorized (a shallow
    unlearning, the case relearning attacks undo)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(200):
        if memorization(model, heldout, subj.eval_cfg, subj.data.eos_id).memorized.sum() == 0:
            return model
        model.train()
        loss = -token_losses(logits_of(model, members), members).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    raise AssertionError("gradient ascent did not remove the held-out rows' memorization")


def test_relearning_on_the_forget_subset_brings_the_other_rows_back(subject):
    cfg, subj = subject
    cfg = copy.deepcopy(cfg)
    cfg.relearn.subset_share, cfg.relearn.steps, cfg.relearn.eval_steps = 0.5, 10, [0, 10]
    sets = audit_sets(cfg, subj, subj.model)
    assert sets.heldout_base == 100.0  # forget_set=mem: the base model reproduces every row
    model = ascend_until_forgotten(copy.deepcopy(subj.model), sets.members.rows, sets.heldout, subj)
    curve = relearn_curve(
        model,
        sets.attacker_rows,
        sets.heldout,
        subj.eval_cfg,
        eos_id=subj.data.eos_id,
        pad_id=subj.data.pad_id,
        relearn_cfg=cfg.relearn,
        seed=0,
    )
    assert curve[0] == 0.0
    assert curve[10] > curve[0]


def test_lora_relearning_on_gpt_neox_leaves_the_model_unchanged():
    torch.manual_seed(0)
    model = tiny_neox().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    relearn = OmegaConf.create(
        {"steps": 3, "eval_steps": [0, 3], "lr": 1e-2, "batch_size": 4, "method": "auto"}
        | {"lora_rank": 4, "lora_alpha": 8}
    )
    assert uses_lora(model, relearn.method)
    curve = relearn_curve(
        model,
        random_rows(8, 1),
        natural(random_rows(8, 2)),
        WINDOW,
        eos_id=0,
        pad_id=0,
        relearn_cfg=relearn,
        seed=0,
    )
    assert set(curve) == {0, 3}
    assert type(model).__name__ == "GPTNeoXForCausalLM" and not model.training
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("model_name", ["tinymem", "tiny_neox"])
def test_quantization_keeps_masked_weights_at_zero(model_name, subject):
    model = subject[1].model if model_name == "tinymem" else tiny_neox()
    layers = block_weights(model)
    masks = {
        f"{name}.weight": torch.zeros_like(m.weight, dtype=torch.bool) for name, m in layers.items()
    }
    first = next(iter(masks))
    masks[first] = torch.rand(masks[first].shape, generator=torch.Generator().manual_seed(0)) < 0.5
    edited = Edit("test", masks).apply(copy.deepcopy(model))
    params = dict(edited.named_parameters())
    for bits, group in ((8, None), (4, 32)):
        quantized = dict(quantized_copy(edited, bits=bits, group_size=group).named_parameters())
        for name, keep in masks.items():
            assert (quantized[name][~keep] == 0).all()
            assert torch.equal(params[name][~keep], quantized[name][~keep])


def test_fake_quantization_error_is_at_most_half_a_step():
    weight = torch.randn(16, 64, generator=torch.Generator().manual_seed(0))
    for bits, group in ((8, None), (4, 16)):
        rounded = fake_quantize(weight, bits=bits, group_size=group)
        size = group or 64
        step = weight.reshape(16, -1, size).abs().amax(-1, keepdim=True) / (2 ** (bits - 1) - 1)
        error = (rounded - weight).reshape(16, -1, size).abs()
        assert (error <= step / 2 + 1e-6).all()
        levels = (rounded.reshape(16, -1, size) / step).round().unique()
        assert len(levels) <= 2**bits


def test_oracle_training_set_lacks_every_copy_of_the_forget_rows(subject):
    data = subject[1].data
    forget = torch.tensor([0, 3, 5])
    reduced = without_rows(data, forget)
    gone = torch.isin(data.train_twin, forget)
    assert len(reduced.train) == len(data.train) - int(gone.sum()) and gone.sum() >= 3
    assert not torch.isin(reduced.train_twin, forget).any()
    assert torch.equal(reduced.train, data.train[~gone])


@pytest.mark.slow
def test_oracle_is_trained_once_and_audited_like_the_model(tiny_run, tmp_path):
    cfg = audit_config(
        tmp_path, tiny_run.ckpt, "oracle=true", "relearn.steps=1", "relearn.eval_steps=[0,1]"
    )
    first = run(cfg)
    cached = list((tmp_path / "cache" / "audit_oracle").glob("*.ckpt"))
    assert len(cached) == 1
    again = run(cfg)
    assert again["oracle/mem/perc"] == first["oracle/mem/perc"]
    assert {f"oracle/{k}" for k in expected_keys(cfg, 10)} <= set(first)


def expected_keys(cfg, k: int) -> set[str]:
    steps = [s for s in cfg.relearn.eval_steps if s <= cfg.relearn.steps]
    keys = {"mem/perc", "util/acc_mean"}
    for kind in KINDS:
        keys |= {f"audit/relearn/{kind}/step{s}/mem/perc" for s in steps}
        keys |= {f"audit/relearn/{kind}/steps_to_half", f"audit/relearn/{kind}/auc"}
    keys |= {f"audit/quant/{q}/mem/perc" for q in ("int8", "int4")}
    keys |= {f"audit/mia/{a}/{m}" for a in ATTACKS for m in ("auc", "tpr_at_1fpr")}
    keys |= {f"audit/extract/k{i}/perc" for i in range(1, k + 1)}
    keys |= {f"audit/extract/prob_ge_{p}/perc" for p in ("1e-1", "1e-2", "1e-3")}
    return keys


def test_entry_point_writes_every_summary_key(tiny_run, tmp_path):
    cfg = audit_config(
        tmp_path, tiny_run.ckpt, "relearn.steps=2", "relearn.eval_steps=[0,1,2]", "results=true"
    )
    metrics = run(cfg)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    k = int(load_subject(cfg).eval_cfg.k)
    assert expected_keys(cfg, k) <= set(summary)
    assert summary["run/task"] == "audit"
    assert summary["audit/mia/nonmembers/n"] == summary["forget/n"]
    rows = (tmp_path / "results" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["mem/perc"] == metrics["mem/perc"]


def audit_row(label: str, curve: list[float], **extra) -> dict:
    row = {
        "run/task": "audit",
        "run/status": "done",
        "ckpt": "a.ckpt",
        "audit/label": label,
        "mem/perc": curve[0],
        "util/acc_mean": 90.0,
        "audit/relearn/heldout/base/mem/perc": 100.0,
        "audit/relearn/forget_subset/auc": sum(curve) / len(curve) / 100,
        "audit/mia/loss/auc": 0.6,
        "audit/mia/zlib/auc": 0.7,
    }
    row.update({f"audit/relearn/forget_subset/step{s}/mem/perc": v for s, v in zip((0, 10), curve)})
    return {**row, **extra}


def test_robustness_table_and_figure(tmp_path):
    import pandas as pd

    from memlab.analysis.robustness import plot_relearning, relearning_curve, robustness_table

    oracle = {"oracle/mem/perc": 0.0, "oracle/audit/relearn/forget_subset/step0/mem/perc": 0.0}
    rows = pd.DataFrame(
        [
            audit_row("none", [100.0, 100.0], **oracle),
            audit_row("balanced_subnet", [0.0, 60.0]),
            audit_row("finetune_clean", [20.0, 30.0], ckpt="ft.ckpt", base_ckpt="a.ckpt"),
            {"run/task": "train", "ckpt": "a.ckpt"},
        ]
    )
    table = robustness_table(rows)
    assert list(table["method"]) == ["none", "balanced_subnet", "finetune_clean", "oracle"]
    assert set(table["ckpt"]) == {"a.ckpt"}
    assert table.loc[1, "MIA AUC"] == 0.7 and table.loc[1, "relearn auc"] == 0.3
    assert relearning_curve(rows.iloc[1]).to_dict() == {0: 0.0, 10: 60.0}
    assert plot_relearning(rows, tmp_path / "relearn.png").stat().st_size > 0


def test_report_adds_the_robustness_table_and_relearning_figure(tmp_path):
    from hydra import compose, initialize_config_dir

    from memlab.report import build_report
    from memlab.runs import CONF_DIR, ResultsStore

    store = ResultsStore(tmp_path / "results")
    for i, row in enumerate([audit_row("none", [100.0, 100.0]), audit_row("greedy", [10.0, 40.0])]):
        store.append({**row, "run/hash": f"h{i}", "run/status": "done"})
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("report", [f"results={tmp_path / 'results'}", f"out_dir={tmp_path / 'out'}"])
    result = build_report(cfg)
    text = result["markdown"].read_text()
    assert "## robustness of each mitigation" in text and "| greedy" in text
    assert "not unlearning runs" not in text  # audit rows are reported, not left over
    assert (tmp_path / "out" / "relearning_0.png").stat().st_size > 0
