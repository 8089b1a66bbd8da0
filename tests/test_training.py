"""Training: outputs of a run, exact resume from last.ckpt, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memlab.errors import ConfigError
from memlab.train import run
from tests.helpers.configs import compose_config

FAST = ["debug=fast", "~callbacks.progress_bar", "results=false"]


def test_run_writes_summary_config_checkpoint_and_csv(tiny_run):
    out = tiny_run.out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mem/perc"] == pytest.approx(tiny_run.metrics["mem/perc"])
    assert summary["run/task"] == "train"
    assert (out / "config.yaml").read_text().count("num_noise: 100") == 1
    assert tiny_run.ckpt.is_file()
    metrics_csv = (out / "csv" / "metrics.csv").read_text()
    assert "mem/perc" in metrics_csv and "train/loss" in metrics_csv


def test_resume_from_last_ckpt_matches_uninterrupted_run(tmp_path):
    full = run(compose_config("train", [*FAST, "trainer.max_epochs=4"], tmp_path / "full"))
    first = compose_config("train", [*FAST, "trainer.max_epochs=2"], tmp_path / "part")
    run(first)
    ckpt = tmp_path / "part" / "run" / "checkpoints" / "last.ckpt"
    resumed_cfg = compose_config(
        "train", [*FAST, "trainer.max_epochs=4", f"ckpt_path={ckpt}"], tmp_path / "resumed"
    )
    resumed = run(resumed_cfg)
    for key in ("mem/perc", "mem/perc_clean", "util/acc_mean", "util/loss/7", "util/ppl/3"):
        assert resumed[key] == pytest.approx(full[key], rel=1e-6, abs=1e-9), key
    assert resumed["epochs"] == full["epochs"] == 4


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.name=fib", r"data.name=fib: unknown data family; known: increment, mult"),
        ("model.name=gpt5", r"model.name=gpt5: unknown model; known: .*tinymem"),
        ("artifact.num_noise=100000", r"artifact.num_noise=100000 must lie in \[1, 280\]"),
        ("eval.k=35", r"eval.prompt_len=10 \+ eval.k=35 must be ≤ the context length 40"),
        ("ckpt_path=/nope/last.ckpt", r"ckpt_path=/nope/last.ckpt does not exist"),
    ],
)
def test_bad_input_fails_with_a_clear_message(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run(compose_config("train", [*FAST, override], tmp_path))


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
