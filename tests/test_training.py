"""Training: outputs of a run, crash-safe checkpoints and exact resume, epoch numbering, the
config in every logger, a non-finite loss, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import pytorch_lightning as pl
import torch
import yaml

from memlab.errors import ConfigError, RunError
from memlab.train import run
from memlab.training.epochs import EpochNumbering
from tests.helpers.configs import compose_config

FAST = ["debug=fast", "~callbacks.progress_bar", "results=false"]
COMPARED = (
    "mem/perc",
    "mem/perc_clean",
    "util/acc_mean",
    "util/loss/7",
    "util/ppl/3",
    "train/loss",
)


class SimulatedKill(Exception):
    """Stands for SIGKILL: nothing after the raise runs, so only what is on disk survives."""


class KillAt(pl.Callback):
    """Raises in the middle of the epoch with Lightning index ``epoch_index`` (after ``batch``)."""

    def __init__(self, epoch_index: int, batch: int = 1) -> None:
        self.epoch_index, self.batch = epoch_index, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch_index and batch_idx == self.batch:
            raise SimulatedKill(f"killed in epoch index {self.epoch_index}")


def kill_at(epoch_index: int, batch: int = 1) -> list[str]:
    """Overrides adding :class:`KillAt` to a run's callbacks."""
    return [
        f"+callbacks.kill._target_={__name__}.KillAt",
        f"+callbacks.kill.epoch_index={epoch_index}",
        f"+callbacks.kill.batch={batch}",
    ]


def test_run_writes_summary_config_checkpoint_and_csv(tiny_run):
    out = tiny_run.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mem/perc"] == pytest.approx(tiny_run.metrics["mem/perc"])
    assert summary["run/task"] == "train"
    assert (out / "config.yaml").read_text().count("num_noise: 100") == 1
    assert tiny_run.ckpt.is_file()
    metrics_csv = (out / "csv" / "metrics.csv").read_text()
    assert "mem/perc" in metrics_csv and "train/loss" in metrics_csv


@pytest.mark.slow  # default-suite budget: covered faster elsewhere or by the slow tier
def test_killed_run_resumes_from_last_ckpt_to_the_uninterrupted_result(tmp_path):
    """A kill in the middle of epoch 3 leaves the whole last.ckpt of epoch 2 (written atomically,
    no temporary file left); resuming from it ends exactly where an uninterrupted run ends."""
    overrides = [*FAST, "trainer.max_epochs=4", "callbacks.model_checkpoint.keep_epochs=[1,3]"]
    full = run(compose_config("train", overrides, tmp_path / "full"))
    killed = compose_config("train", [*overrides, *kill_at(2)], tmp_path / "part")
    with pytest.raises(SimulatedKill):
        run(killed)
    folder = tmp_path / "part" / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0001.ckpt", "last.ckpt"]
    last = torch.load(folder / "last.ckpt", weights_only=False)
    assert [h["epoch"] for h in last["callbacks"]["MemorizationEval"]["history"]] == [1, 2]
    resumed_cfg = compose_config(
        "train", [*overrides, f"ckpt_path={folder / 'last.ckpt'}"], tmp_path / "part"
    )
    resumed = run(resumed_cfg)
    for key in COMPARED:
        assert resumed[key] == pytest.approx(full[key], rel=1e-6, abs=1e-9), key
    assert resumed["epochs"] == full["epochs"] == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        "epoch=0001.ckpt",
        "epoch=0003.ckpt",
        "last.ckpt",
    ]


def test_step_interval_refreshes_last_ckpt_within_an_epoch(tmp_path):
    """debug=fast has 4 batches per epoch: with every_n_steps=3, a kill during step 7 (the third
    batch of epoch 2) finds the checkpoint of step 6, written after the epoch-end one of step 4."""
    overrides = [*FAST, "trainer.max_epochs=3", "callbacks.model_checkpoint.every_n_steps=3"]
    with pytest.raises(SimulatedKill):
        run(compose_config("train", [*overrides, *kill_at(1, batch=2)], tmp_path))
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 6


def test_reference_epoch_numbering_makes_one_more_pass(tmp_path):
    """train.compat=reference: max_epochs + 1 passes labelled 0 … max_epochs, evaluated when the
    label is a multiple of eval_every (the default numbering is checked by the resume test)."""
    overrides = [*FAST, "trainer.max_epochs=2", "train.eval_every=2", "train.compat=reference"]
    metrics = run(compose_config("train", overrides, tmp_path))
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert [h["epoch"] for h in last["callbacks"]["MemorizationEval"]["history"]] == [0, 2]
    assert metrics["epochs"] == 3
    for compat, passes in (("fixed", 3500), ("reference", 3501)):
        numbering = EpochNumbering(compat)
        assert numbering.passes(3500) == passes and numbering.last_label(passes) == 3500
        evaluated = [numbering.label(i) for i in range(passes) if numbering.due(i, 50, passes)]
        assert evaluated == list(range(50 if compat == "fixed" else 0, 3501, 50))


def test_every_logger_gets_the_resolved_config(tmp_path):
    from memlab.data.build import load_data
    from memlab.models.build import build_model
    from memlab.training.setup import make_fit

    cfg = compose_config("train", [*FAST, "logger=[csv,tensorboard,wandb]"], tmp_path)
    data = load_data(cfg)
    fit = make_fit(cfg, data, build_model(cfg.model, data))
    by_name = {type(lg).__name__: lg for lg in fit.trainer.loggers}
    assert set(by_name) == {"CSVLogger", "WandbLogger", "TensorBoardLogger"}
    assert by_name["WandbLogger"].experiment.config["optim.lr"] == cfg.optim.lr
    for name in ("CSVLogger", "TensorBoardLogger"):
        by_name[name].save()
        hparams = yaml.safe_load(
            (tmp_path / "run" / name[:-6].lower() / "hparams.yaml").read_text()
        )
        assert hparams["optim.lr"] == cfg.optim.lr and hparams["model.n_layer"] == 1, name
    by_name["WandbLogger"].experiment.finish()


def test_non_finite_loss_stops_the_run_with_a_run_error(tmp_path):
    with pytest.raises(
        RunError, match=r"non-finite loss \(nan\) at epoch 1, step \d+; lower optim.lr"
    ):
        run(compose_config("train", [*FAST, "optim.lr=1e9"], tmp_path))


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.name=fib", r"data.name=fib: unknown data family; known: increment, mult"),
        ("model.name=gpt5", r"model.name=gpt5: unknown model; known: .*tinymem"),
        ("artifact.num_noise=100000", r"artifact.num_noise=100000 must lie in \[1, 280\]"),
        ("eval.k=35", r"eval.prompt_len=10 \+ eval.k=35 must be ≤ the context length 40"),
        ("ckpt_path=/nope/last.ckpt", r"ckpt_path=/nope/last.ckpt: no such checkpoint"),
    ],
)
def test_bad_input_fails_with_a_clear_message(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run(compose_config("train", [*FAST, override], tmp_path))


@pytest.mark.slow  # default-suite budget: covered faster elsewhere or by the slow tier
def test_cli_prints_one_line_for_bad_input(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "memlab.train",
            *FAST,
            "data.name=fib",
            f"paths.root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("memlab: error")]
    assert lines == ["memlab: error: data.name=fib: unknown data family; known: increment, mult"]
    assert "Traceback" not in proc.stderr


def test_evaluate_reproduces_the_training_summary(tiny_run, tmp_path):
    from memlab.evaluate import run as evaluate

    cfg = compose_config("evaluate", [f"ckpt={tiny_run.ckpt}"], tmp_path)
    metrics = evaluate(cfg)
    assert metrics["mem/perc"] == pytest.approx(tiny_run.metrics["mem/perc"])
    assert metrics["util/acc_mean"] == pytest.approx(tiny_run.metrics["util/acc_mean"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["mem/n_eval"] > 0
