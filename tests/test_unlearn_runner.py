"""The unlearning runner (``python -m memlab.unlearn``): BalancedSubnet on the trained TinyMem
fixture, outputs and the results row, ``apply_edit`` reproduction, the edited model, bad input,
nothing memorized, and every registered method on a tiny GPT-NeoX through the same runner."""

from __future__ import annotations

import json
import math

import pytest

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model
from memlab.models.build import load_trained_model
from memlab.models.edit import Edit
from memlab.unlearn.registry import ELEVEN, METHODS, get_method
from memlab.unlearn.runner import run
from tests.helpers.configs import TINY_OVERRIDES, compose_config

# the preset of conf/unlearn/balanced_subnet.yaml, spelled out so the test pins what it measured
BALANCED = ["unlearn=balanced_subnet"]


def unlearn_config(tmp, ckpt, *overrides):
    return compose_config("unlearn", [f"ckpt={ckpt}", *overrides], tmp)


def after_metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith("after/")}


@pytest.fixture(scope="module")
def balanced(tiny_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("balanced")
    cfg = unlearn_config(tmp, tiny_run.ckpt, *BALANCED)
    return cfg, run(cfg), tmp / "run"


def test_balanced_subnet_reduces_memorization_with_little_accuracy_loss(balanced):
    _cfg, row, _out = balanced
    before, after = row["before/mem/perc"], row["after/mem/perc"]
    acc_before, acc_after = row["before/util/acc_mean"], row["after/util/acc_mean"]
    print(
        f"BalancedSubnet: mem {before:.1f}% -> {after:.1f}%, acc {acc_before:.2f} -> {acc_after:.2f}"
    )
    assert before > 0 and row["forget/n"] > 0
    assert after < before and after <= 0.5 * before
    assert acc_after >= acc_before - 3.0


def test_runner_writes_summary_edit_and_results_row(balanced):
    cfg, row, out = balanced
    summary = json.loads((out / "summary.json").read_text())
    assert summary["after/mem/perc"] == row["after/mem/perc"]
    edit = Edit.load(out / "edit.safetensors")
    assert edit.method == "balanced_subnet" and edit.n_changed == row["edit/n_changed"]
    per_matrix = [math.floor(m.numel() * cfg.unlearn.ratio) for m in edit.masks.values()]
    assert edit.n_changed == sum(per_matrix) and all(k > 0 for k in per_matrix)
    assert all(n.endswith(".weight") for n in edit.masks)  # biases are never masked
    lines = (out.parent / "results" / "results.jsonl").read_text().splitlines()
    stored = json.loads(lines[-1])
    assert (
        stored["unlearn.method"] == "balanced_subnet"
        and stored["unlearn.name"] == "balanced_subnet"
    )
    assert stored["cost/seconds"] > 0 and stored["run/status"] == "done"
    for key in ("mem/perc", "util/acc_mean", "util/ppl"):
        assert f"before/{key}" in stored and f"after/{key}" in stored
    assert not (out / "edited.ckpt").exists()  # the model is only saved when asked


def test_apply_edit_reproduces_the_run_and_saves_the_model(balanced, tiny_run, tmp_path):
    _cfg, row, out = balanced
    cfg = unlearn_config(
        tmp_path, tiny_run.ckpt, f"apply_edit={out / 'edit.safetensors'}", "save_model=true"
    )
    again = run(cfg)
    assert after_metrics(again) == after_metrics(row)
    assert again["edit/n_changed"] == row["edit/n_changed"]
    assert again["cost/seconds"] == pytest.approx(row["cost/seconds"])  # the original edit's time
    data = load_data(tiny_run.cfg)
    model, run_cfg = load_trained_model(tmp_path / "run" / "edited.ckpt", data)
    metrics, _ = evaluate_model(model, data, run_cfg.eval)
    assert metrics["mem/perc"] == row["after/mem/perc"]


def test_ratio_outside_unit_interval_is_one_clear_line(tiny_run, tmp_path):
    cfg = unlearn_config(tmp_path, tiny_run.ckpt, "unlearn.ratio=1.5")
    with pytest.raises(ConfigError, match=r"unlearn.ratio=1.5 must be a fraction in \[0, 1\]"):
        run(cfg)


def test_unknown_method_lists_the_eleven(tiny_run, tmp_path, capsys):
    cfg = unlearn_config(tmp_path, tiny_run.ckpt, "unlearn.name=forget_it")
    with pytest.raises(ConfigError, match="the eleven: zero_out, activations") as err:
        run(cfg)
    assert "\n" not in str(err.value)


def test_checkpoint_that_does_not_match_the_model_config(tiny_run, tmp_path):
    cfg = unlearn_config(tmp_path, tiny_run.ckpt, "model=tinymem", "model.n_layer=3")
    with pytest.raises(ConfigError, match="does not match the model config"):
        run(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        run(unlearn_config(tmp_path, tmp_path / "missing.ckpt"))


# ---------------------------------------------------------------- a tiny GPT-NeoX, every method
NEOX_OVERRIDES = [
    *(o for o in TINY_OVERRIDES if not o.startswith(("model.", "trainer.max_epochs"))),
    "model=tiny_neox",
    "trainer.max_epochs=3",
    "artifact.num_noise=30",
]
# cheap settings per method (the presets are tuned for real checkpoints, not for a smoke run)
CHEAP = {
    "greedy": ["unlearn.ratio=1e-4"],
    "second_order": ["unlearn.num_grads=8"],
    "subnet": ["unlearn.epochs=1"],
    "balanced_subnet": ["unlearn.epochs=1", "unlearn.retain_size=64"],
    "integrated_gradients": ["unlearn.steps=4"],
}


@pytest.fixture(scope="module")
def neox_run(tmp_path_factory):
    from memlab.train import run as train

    tmp = tmp_path_factory.mktemp("neox_run")
    cfg = compose_config("train", NEOX_OVERRIDES, tmp)
    metrics = train(cfg)
    return tmp / "run" / "checkpoints" / "last.ckpt", metrics


def test_nothing_memorized_writes_only_the_base_row(neox_run, tmp_path, capsys):
    ckpt, metrics = neox_run
    if metrics["mem/perc"] > 0:
        pytest.skip("the tiny GPT-NeoX memorized something; the empty-forget-set path is untested")
    row = run(unlearn_config(tmp_path, ckpt, "unlearn=durable"))
    assert row["forget/n"] == 0 and row["unlearn/skipped"] == "nothing memorized"
    assert "before/mem/perc" in row and not after_metrics(row)
    assert not (tmp_path / "run" / "edit.safetensors").exists()
    assert "nothing to unlearn" in capsys.readouterr().out
    stored = json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[-1])
    assert stored["run/status"] == "done" and stored["forget/n"] == 0


@pytest.mark.parametrize("name", ELEVEN)
def test_every_registered_method_runs_on_a_tiny_gpt_neox(name, neox_run, tmp_path):
    get_method("greedy")  # import the catalogue
    if name not in METHODS:
        pytest.skip(f"{name} is not registered")
    ckpt, metrics = neox_run
    forget_set = "mem" if metrics["mem/perc"] > 0 else "artifact"
    cfg = unlearn_config(
        tmp_path, ckpt, f"unlearn={name}", f"forget_set={forget_set}", *CHEAP.get(name, [])
    )
    row = run(cfg)
    assert row["subject/arch"] == "GPTNeoXForCausalLM" and row["forget/n"] > 0
    edit = Edit.load(tmp_path / "run" / "edit.safetensors")
    assert edit.method == name and edit.n_changed == row["edit/n_changed"] > 0
    assert all(".mlp.dense_" in n for n in edit.masks)  # only MLP tensors, by GPT-NeoX names
    assert set(after_metrics(row)) == {f"after/{k[7:]}" for k in row if k.startswith("before/")}
