"""Fine-tuning recipes: data selection, optimizer inheritance, the paper's direction of effect on a
memorizing model, resuming, the base checkpoint (``ckpt``, ``ckpt=latest``) and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from memlab.data.build import load_data
from memlab.errors import ConfigError
from memlab.finetune import (
    base_checkpoint_path,
    completed_epochs,
    find_base_checkpoint,
    optimizer_state,
    recipe_rows,
    run,
)
from memlab.models.build import load_trained_model
from memlab.training.setup import make_fit
from tests.helpers.configs import compose_config

QUIET = ["~callbacks.progress_bar", "results=false"]


def finetune_config(tmp_path, ckpt, *overrides):
    return compose_config("finetune", [f"ckpt={ckpt}", *QUIET, *overrides], tmp_path)


def test_recipes_select_clean_rows(tiny_run):
    data = load_data(tiny_run.cfg)
    twins, clean = data.artifact.clean, data.clean_train()
    assert torch.equal(recipe_rows("clean_artifact", data), twins)
    assert torch.equal(recipe_rows("all_clean", data), clean)
    assert torch.equal(recipe_rows("both", data), torch.cat([clean, twins]))
    noised = data.artifact.rows[(data.artifact.rows != twins).any(1)]
    assert len(noised) > 0
    chosen = {tuple(r.tolist()) for r in recipe_rows("both", data)}
    assert not {tuple(r.tolist()) for r in noised} & chosen  # no noised row is fine-tuned on
    with pytest.raises(ConfigError, match="finetune.recipe"):
        recipe_rows("extra_only", data)


@pytest.mark.parametrize("recipe", ["clean", "both"])
def test_finetuning_reduces_memorization(tiny_run, tmp_path, recipe):
    """The paper: fine-tuning on clean data removes memorized artifacts. Measured on tiny_run:
    clean 67.7 → 0.0 % memorized (clean continuation 16 → 87 %, mean accuracy 80.0 → 69.6 %)."""
    metrics = run(finetune_config(tmp_path, tiny_run.ckpt, f"finetune={recipe}"))
    print(recipe, {k: round(v, 2) for k, v in metrics.items() if "perc" in k or "acc_mean" in k})
    assert metrics["base/mem/perc"] == pytest.approx(tiny_run.metrics["mem/perc"])
    assert metrics["mem/perc"] < 0.5 * metrics["base/mem/perc"]
    assert metrics["mem/perc_clean"] > metrics["base/mem/perc_clean"]  # the clean rule comes back
    if recipe == "both":  # all clean data keeps utility; the clean twins alone cost some
        assert metrics["util/acc_mean"] > metrics["base/util/acc_mean"] - 10
    assert metrics["finetune/epochs"] == 5
    history = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    epochs = [h["epoch"] for h in history["callbacks"]["MemorizationEval"]["history"]]
    base_epochs = completed_epochs(torch.load(tiny_run.ckpt, weights_only=False))
    assert epochs[-5:] == list(range(base_epochs + 1, base_epochs + 6))  # evaluated every epoch
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["run/task"] == "finetune"


@pytest.mark.parametrize("inherit", [True, False])
def test_optimizer_state_is_inherited_with_the_finetuning_lr(tiny_run, tmp_path, inherit):
    cfg = finetune_config(tmp_path, tiny_run.ckpt, "finetune.lr=5e-4")
    base = torch.load(tiny_run.ckpt, weights_only=False)
    data = load_data(tiny_run.cfg)
    model, _ = load_trained_model(tiny_run.ckpt, data)
    run_cfg = tiny_run.cfg.copy()
    run_cfg.optim.lr = cfg.finetune.lr
    run_cfg.logger = None  # a logger would re-open (and empty) the shared base run's csv/ folder
    state = optimizer_state(base, make_fit(run_cfg, data, model), inherit=inherit)
    assert all(group["lr"] == 5e-4 for group in state["param_groups"])
    moments = base["optimizer_states"][0]["state"]
    if inherit:
        assert torch.equal(state["state"][0]["exp_avg"], moments[0]["exp_avg"])
    else:
        assert state["state"] == {}


@pytest.mark.slow  # default-suite budget: covered faster elsewhere or by the slow tier
def test_finetune_errors_are_one_line(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        run(finetune_config(tmp_path, tmp_path / "missing.ckpt"))
    with pytest.raises(ConfigError, match="does not match the model config"):
        run(finetune_config(tmp_path, tiny_run.ckpt, "model=tinymem", "model.n_layer=3"))
    cli = subprocess.run(
        [sys.executable, "-m", "memlab.finetune", f"ckpt={tmp_path / 'missing.ckpt'}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 2
    assert cli.stderr.strip().splitlines() == [
        f"memlab: error: ckpt={tmp_path}/missing.ckpt does not exist"
    ]


def test_base_checkpoint_lookup_in_the_results_store(tiny_run, tmp_path):
    from memlab.runs import ResultsStore

    store = ResultsStore(tmp_path)
    row = {"run/task": "train", "run/status": "done", "data.name": "increment", "seed": 0}
    store.append({**row, "model.n_layer": 2, "paths.output_dir": str(tiny_run.out)})
    store.append({**row, "model.n_layer": 4, "paths.output_dir": str(tmp_path / "gone")})
    found = find_base_checkpoint(tmp_path, {"data": "increment", "seed": 0, "n_layer": 2})
    assert found == tiny_run.ckpt
    with pytest.raises(ConfigError, match="no finished run"):
        find_base_checkpoint(tmp_path, {"data": "increment", "n_layer": 4})
    with pytest.raises(ConfigError, match="unknown base key"):
        find_base_checkpoint(tmp_path, {"layers": 2})


def test_ckpt_is_required_unless_latest_is_asked_for(tiny_run, tmp_path):
    """Without ckpt nothing is fine-tuned; ckpt=latest takes the results-store match of base.*."""
    with pytest.raises(ConfigError, match="ckpt is not set: pass ckpt=<path .*>, or ckpt=latest"):
        run(compose_config("finetune", QUIET, tmp_path))
    from memlab.runs import ResultsStore

    row = {"run/task": "train", "run/status": "done", "data.name": "increment"}
    row.update({"regularizer.name": "none", "paths.output_dir": str(tiny_run.out)})
    ResultsStore(tmp_path / "results").append(row)
    cfg = compose_config("finetune", ["ckpt=latest", "base.data=increment", *QUIET], tmp_path)
    assert base_checkpoint_path(cfg) == tiny_run.ckpt
    cfg = compose_config("finetune", ["ckpt=latest", "base.data=mult", *QUIET], tmp_path)
    with pytest.raises(ConfigError, match="ckpt=latest: no finished run"):
        base_checkpoint_path(cfg)


def test_interrupted_finetuning_resumes_from_its_own_last_ckpt(tiny_run, tmp_path):
    """A fine-tuning run killed in its third epoch, re-run with the same run directory (as a sweep
    re-runs it), resumes from its own last.ckpt and ends where an uninterrupted run ends."""
    from tests.test_training import SimulatedKill, kill_at

    overrides = ["finetune=clean", "finetune.epochs=3"]
    whole = run(finetune_config(tmp_path / "whole", tiny_run.ckpt, *overrides))
    base_passes = completed_epochs(torch.load(tiny_run.ckpt, weights_only=False))
    killed = finetune_config(
        tmp_path / "part", tiny_run.ckpt, *overrides, *kill_at(base_passes + 2)
    )
    with pytest.raises(SimulatedKill):
        run(killed)
    last = torch.load(tmp_path / "part" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert completed_epochs(last) == base_passes + 2
    resumed = run(finetune_config(tmp_path / "part", tiny_run.ckpt, *overrides))
    for key in ("mem/perc", "mem/perc_clean", "util/acc_mean", "util/loss/7", "train/loss"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9), key
    assert resumed["finetune/epochs"] == whole["finetune/epochs"] == 3
