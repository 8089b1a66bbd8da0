"""The everyday research loop, driven as a user drives it: entry points as subprocesses on a tiny
config. train → SIGKILL mid-run → the same command again resumes → the same final metrics as an
uninterrupted run; a sweep of two unlearning methods and one failing run (the others finish, the
sweep exits non-zero); an edit re-applied (same metrics, same method recorded); ``memlab.report``
with a table row per method and a PNG."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memlab.runs import ResultsStore

TINY = [  # memorizes part of its 100 noised rows within these 24 epochs (2 layers)
    "data.num_main=400", "data.num_extra=100", "data.num_test=20", "data.length=6",
    "data.max_ctx=40", "artifact.num_noise=100", "model.n_layer=2", "trainer.max_epochs=24",
    "train.eval_every=8", "train.batch_size=64", "eval.prompt_len=10", "eval.k=10",
    "~callbacks.progress_bar",
]  # fmt: skip
SWEEP = """# @package _global_
sweep:
  name: loop
  task: unlearn
  fixed: {{ckpt: '{ckpt}', forget_set: artifact}}
  axes: {{unlearn: [activations, balanced_subnet, greedy]}}
  rules:
    - {{when: {{unlearn: balanced_subnet}}, set: {{unlearn.epochs: 2}}}}
    - {{when: {{unlearn: greedy}}, set: {{unlearn.ratio: 2.0}}}}
"""


def memlab(tmp: Path, task: str, *args: str, popen: bool = False):
    env = {**os.environ, "MEMLAB_ROOT": str(tmp), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", f"memlab.{task}", *args]
    if popen:
        return subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=300)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def kill_after_first_checkpoint(proc: subprocess.Popen, last: Path) -> None:
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, Path]:
    tmp = tmp_path_factory.mktemp("loop")
    full, killed = tmp / "full", tmp / "killed"
    whole = memlab(tmp, "train", *TINY, f"hydra.run.dir={full}", popen=True)
    victim = memlab(tmp, "train", *TINY, f"hydra.run.dir={killed}", popen=True)
    kill_after_first_checkpoint(victim, killed / "checkpoints" / "last.ckpt")
    assert whole.wait(timeout=300) == 0
    resumed = memlab(tmp, "train", *TINY, f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in (killed / "run.log").read_text()
    return tmp, full, killed


def test_a_killed_run_resumes_to_the_same_final_metrics(trained):
    _, full, killed = trained
    a, b = summary(full), summary(killed)
    keys = [k for k in a if k.startswith(("mem/", "util/")) or k in ("train/loss", "epochs")]
    assert keys and {k: a[k] for k in keys} == {k: b[k] for k in keys}


def test_unlearn_sweep_reapplied_edit_and_report(trained):
    tmp, full, _ = trained
    conf = tmp / "conf" / "experiment"
    conf.mkdir(parents=True)
    (conf / "loop.yaml").write_text(SWEEP.format(ckpt=full / "checkpoints" / "last.ckpt"))
    sweep = memlab(tmp, "sweep", "experiment=loop", f"hydra.searchpath=[file://{tmp / 'conf'}]")
    assert sweep.returncode != 0  # one run failed
    store = ResultsStore(tmp / "outputs" / "results")
    rows = [r for r in store.rows() if r["run/task"] == "unlearn"]
    status = {r["unlearn.name"]: r["run/status"] for r in rows}
    assert status == {"activations": "done", "balanced_subnet": "done", "greedy": "failed"}
    failed = next(r for r in rows if r["run/status"] == "failed")
    assert "unlearn.ratio=2.0" in failed["run/error"]

    act = next(r for r in rows if r["unlearn.name"] == "activations")
    edit = tmp / "outputs" / "sweeps" / "loop" / act["run/hash"] / "edit.safetensors"
    again = memlab(tmp, "unlearn", f"ckpt={full / 'checkpoints' / 'last.ckpt'}", f"apply_edit={edit}",
                   "forget_set=artifact", f"hydra.run.dir={tmp / 'apply'}")  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    applied = summary(tmp / "apply")
    after = {k: v for k, v in act.items() if k.startswith("after/")}
    assert after and {k: applied[k] for k in after} == after
    assert applied["unlearn.method"] == "activations"

    report = memlab(tmp, "report", f"out_dir={tmp / 'report'}")
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp / "report" / "best_runs.md").read_text()
    assert "| activations" in text and "| balanced_subnet" in text
    assert list((tmp / "report").glob("*.png"))
