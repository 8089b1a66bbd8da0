"""The unlearning runner (``python -m memlab.unlearn``): BalancedSubnet on the trained TinyMem
fixture, outputs and the results row (with the checkpoint's own data, artifact, model and eval
settings), ``apply_edit`` reproduction and its bad inputs, the edited model, other bad input,
nothing memorized (a constructed case), and every method of the table on a tiny GPT-NeoX."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.metrics.evaluate import evaluate_model
from memlab.models.build import build_model, load_trained_model
from memlab.models.edit import Edit
from memlab.unlearn.methods import METHODS
from memlab.unlearn.runner import run
from tests.helpers.configs import TINY_OVERRIDES, compose_config

# BalancedSubnet at its preset ratio and α, with few epochs and retain rows (the tests below check
# what the runner writes, not how well the method unlearns)
BALANCED = ["unlearn=balanced_subnet", "unlearn.epochs=2", "unlearn.retain_size=64"]


def unlearn_config(tmp, ckpt, *overrides):
    return compose_config("unlearn", [f"ckpt={ckpt}", *overrides], tmp)


def after_metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith("after/")}


@pytest.fixture(scope="module")
def balanced(tiny_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("balanced")
    cfg = unlearn_config(tmp, tiny_run.ckpt, *BALANCED)
    return cfg, run(cfg), tmp / "run"


def untrained_checkpoint(tmp: Path, overrides: list[str]) -> Path:
    """A memlab checkpoint of a freshly initialised model (no training: it memorizes nothing)."""
    cfg = compose_config("train", overrides, tmp)
    torch.manual_seed(0)
    model = build_model(cfg.model, load_data(cfg))
    path = tmp / "untrained.ckpt"
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "memlab_config": OmegaConf.to_container(cfg)}, path)
    return path


def test_runner_writes_summary_edit_and_results_row(balanced, tiny_run):
    cfg, row, out = balanced
    print(f"BalancedSubnet: mem {row['before/mem/perc']:.1f}% -> {row['after/mem/perc']:.1f}%")
    assert row["before/mem/perc"] > 0 and row["forget/n"] > 0
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
    trained = tiny_run.cfg  # the checkpoint's own settings, as config columns
    assert stored["data.name"] == trained.data.name == "increment"
    assert stored["data.num_main"] == trained.data.num_main
    assert stored["artifact.kind"] == trained.artifact.kind
    assert stored["model.n_layer"] == trained.model.n_layer == 2
    assert stored["eval.prompt_len"] == trained.eval.prompt_len and stored["train.seed"] == 0
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
    assert again["unlearn.name"] == again["unlearn.method"] == "balanced_subnet"
    assert again["unlearn.loss_weighting"] == 0.7
    assert again["edit/n_changed"] == row["edit/n_changed"]
    assert again["cost/seconds"] == pytest.approx(row["cost/seconds"])  # the original edit's time
    data = load_data(tiny_run.cfg)
    model, run_cfg = load_trained_model(tmp_path / "run" / "edited.ckpt", data)
    metrics, _ = evaluate_model(model, data, run_cfg.eval)
    assert metrics["mem/perc"] == row["after/mem/perc"]


def test_apply_edit_records_the_edit_s_method_not_the_selected_group(balanced, tiny_run, tmp_path):
    _cfg, row, out = balanced
    cfg = unlearn_config(
        tmp_path, tiny_run.ckpt, f"apply_edit={out / 'edit.safetensors'}", "unlearn=greedy"
    )
    again = run(cfg)
    assert again["unlearn.name"] == "balanced_subnet" and again["unlearn.ratio"] == 0.05
    assert again["unlearn.count"] is None  # greedy's own key: not used by this edit
    stored = json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[-1])
    assert stored["unlearn.name"] == "balanced_subnet" and stored["unlearn.count"] is None


def test_damaged_or_foreign_edit_file_is_one_line_naming_it(tiny_run, tmp_path):
    truncated = tmp_path / "truncated.safetensors"
    Edit("durable", {"transformer.h.0.mlp.c_fc.bias": torch.tensor([True, False])}).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:40])
    foreign = Edit("durable", {"no.such.weight": torch.tensor([True, False])})
    foreign_file = foreign.save(tmp_path / "foreign.safetensors")
    for path, why in ((truncated, "not a readable edit"), (foreign_file, "does not fit the model")):
        with pytest.raises(ConfigError) as err:
            run(unlearn_config(tmp_path, tiny_run.ckpt, f"apply_edit={path}"))
        message = str(err.value)
        assert message.startswith(f"apply_edit={path}: {why}") and "\n" not in message


def test_ratio_outside_unit_interval_is_one_clear_line(tiny_run, tmp_path):
    cfg = unlearn_config(tmp_path, tiny_run.ckpt, "unlearn.ratio=1.5")
    with pytest.raises(
        ConfigError, match=r"unlearn.ratio=1.5: not a fraction; allowed: .*\[0, 1\]"
    ):
        run(cfg)


def test_unknown_method_lists_the_table(tiny_run, tmp_path):
    cfg = unlearn_config(tmp_path, tiny_run.ckpt, "unlearn.name=forget_it")
    with pytest.raises(
        ConfigError, match="unlearn.name=forget_it: unknown unlearning method"
    ) as err:
        run(cfg)
    assert ", ".join(sorted(METHODS)) in str(err.value) and "\n" not in str(err.value)


def test_data_that_disagrees_with_the_checkpoint_names_both(tiny_run, tmp_path):
    with pytest.raises(ConfigError) as err:
        run(unlearn_config(tmp_path, tiny_run.ckpt, "data=mult"))
    assert "data.name=mult" in str(err.value) and "data.name=increment" in str(err.value)
    with pytest.raises(ConfigError, match="data.num_main=999: disagrees"):
        run(unlearn_config(tmp_path, tiny_run.ckpt, "data=increment", "data.num_main=999"))


def test_checkpoint_that_does_not_match_the_model_config(tiny_run, tmp_path):
    cfg = unlearn_config(tmp_path, tiny_run.ckpt, "model=tinymem", "model.n_layer=3")
    with pytest.raises(ConfigError, match="does not match the model config"):
        run(cfg)
    with pytest.raises(ConfigError, match="does not exist"):
        run(unlearn_config(tmp_path, tmp_path / "missing.ckpt"))


def test_nothing_memorized_writes_only_the_base_row(tmp_path, capsys):
    ckpt = untrained_checkpoint(tmp_path, TINY_OVERRIDES)
    row = run(unlearn_config(tmp_path, ckpt, "unlearn=durable"))
    assert row["before/mem/perc"] == 0.0  # a random model reproduces no noised continuation
    assert row["forget/n"] == 0 and row["unlearn/skipped"] == "nothing memorized"
    assert "before/mem/perc" in row and not after_metrics(row)
    assert not (tmp_path / "run" / "edit.safetensors").exists()
    assert "nothing to unlearn" in capsys.readouterr().out
    stored = json.loads((tmp_path / "results" / "results.jsonl").read_text().splitlines()[-1])
    assert stored["run/status"] == "done" and stored["forget/n"] == 0


# ---------------------------------------------------------------- a tiny GPT-NeoX, every method
NEOX_OVERRIDES = [
    *(o for o in TINY_OVERRIDES if not o.startswith("model.")),
    "model=tiny_neox",
    "artifact.num_noise=8",
]
# every method of the table, with cheap settings (the presets are tuned for real checkpoints)
CHEAP = {
    "zero_out": ["unlearn.unit_chunk=256"],
    "activations": [],
    "slimming": [],
    "hard_concrete": [],
    "integrated_gradients": ["unlearn.steps=2", "unlearn.prompt_len=36"],
    "greedy": ["unlearn.ratio=1e-4"],
    "durable": [],
    "durable_aggregate": [],
    "second_order": ["unlearn.num_grads=4"],
    "subnet": ["unlearn.epochs=1"],
    "balanced_subnet": ["unlearn.epochs=1", "unlearn.retain_size=64"],
}


@pytest.fixture(scope="module")
def neox_ckpt(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("neox"), NEOX_OVERRIDES)


def test_every_method_of_the_table_is_run_below():
    assert set(CHEAP) == set(METHODS)


@pytest.mark.parametrize("name", list(CHEAP))
def test_every_method_runs_on_a_tiny_gpt_neox(name, neox_ckpt, tmp_path):
    cfg = unlearn_config(
        tmp_path, neox_ckpt, f"unlearn={name}", "forget_set=artifact", *CHEAP[name]
    )
    row = run(cfg)
    assert row["subject/arch"] == "GPTNeoXForCausalLM" and row["forget/n"] == 8
    assert row["model.name"] == "tiny_neox"
    edit = Edit.load(tmp_path / "run" / "edit.safetensors")
    assert edit.method == name and edit.n_changed == row["edit/n_changed"] > 0
    assert all(".mlp.dense_" in n for n in edit.masks)  # only MLP tensors, by GPT-NeoX names
    assert set(after_metrics(row)) == {f"after/{k[7:]}" for k in row if k.startswith("before/")}
