"""Sweep plans (the paper's grid sizes), resume after a kill, failure isolation, launchers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from memlab.runs import ResultsStore
from memlab.sweeps.plan import build_plan, format_value
from tests.helpers.configs import TINY_OVERRIDES
from tests.helpers.toy_task import SEARCH_PATH, TOY_TASK

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")


def plan_for(experiment: str, *overrides: str):
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("sweep", overrides=[f"experiment={experiment}", *overrides])
    return build_plan(OmegaConf.to_container(cfg.sweep, resolve=True))


def test_training_grid_has_168_runs():
    plan = plan_for("paper/train_tinymem")
    assert len(plan) == 168
    assert plan.count_by("data") == {"mult": 72, "increment": 72, "wikitext": 24}


@pytest.mark.parametrize(
    ("n_layer", "data", "expected"),
    [(4, "mult", 167), (16, "mult", 163), (4, "wikitext", 166), (16, "wikitext", 163)],
)
def test_unlearning_grid_per_tinymem_checkpoint(n_layer, data, expected):
    """167 / 163 / 166 per checkpoint as the reference's localize_hp_sweep.py filters give. For a
    16-layer wikitext model its filters (the 16-layer and the wiki rule both drop the same greedy
    ratio-0.05 run) give 163, not the 162 obtained by subtracting that run twice."""
    plan = plan_for(
        "paper/unlearn_tinymem",
        f"sweep.context.n_layer={n_layer}",
        f"sweep.context.data={data}",
        "sweep.context.ckpt=/one.ckpt",
    )
    assert len(plan) == expected
    counts = plan.count_by("unlearn")
    assert counts["balanced_subnet"] == 90 and counts["subnet"] == 30
    assert counts.get("integrated_gradients", 0) == (0 if n_layer == 16 else 3)


def test_pythia_grid_has_152_runs_per_model_and_step():
    plan = plan_for("paper/unlearn_pythia")
    cells: dict[tuple, int] = {}
    for run in plan.runs:
        d = run.as_dict()
        cells[(d["model"], d["model.revision"])] = (
            cells.get((d["model"], d["model.revision"]), 0) + 1
        )
    assert len(cells) == 8 and set(cells.values()) == {152}
    assert plan.count_by("unlearn")["greedy"] == 8  # only ratio 1e-5


def test_override_formatting():
    assert (
        format_value(1e-5) == "1e-05"
        and format_value(True) == "true"
        and format_value(None) == "null"
    )
    assert format_value("a b") == "'a b'" and format_value([1, "x"]) == "[1,x]"


ENV = {"WANDB_MODE": "offline", "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def _sweep_cmd(*args: str, experiment: str = "toy_sweep") -> list[str]:
    search = f"hydra.searchpath={format_value(SEARCH_PATH)}"
    return [sys.executable, "-m", "memlab.sweep", search, f"experiment={experiment}", *args]


def _sweep(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **ENV, "MEMLAB_ROOT": str(tmp)}
    return subprocess.run(_sweep_cmd(*args), cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path):
    log, marker = tmp_path / "executions.log", tmp_path / "crashed"
    fixed = (
        f"+sweep.fixed={{toy.crash_at:0.5,toy.crash_once_marker:'{marker}',toy.log_file:'{log}'}}"
    )
    first = _sweep(tmp_path, fixed)
    assert first.returncode != 0 and marker.exists()  # died abruptly at the first x=0.5 run
    store = ResultsStore(tmp_path / "outputs" / "results")
    finished = store.done_hashes()
    assert 0 < len(finished) < 9
    second = _sweep(tmp_path, fixed)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f"already_done {len(finished)}" in second.stdout
    rows = store.rows()
    assert len(rows) == 9 and len(store.done_hashes()) == 9  # every run exactly once
    executions = log.read_text().splitlines()
    assert len(executions) == len(set(executions)) == 9  # no finished run was executed again


def _launch(tmp_path, monkeypatch, launcher: dict, rules=None):
    from memlab.sweeps.launch import launch_plan

    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    spec = {"name": "t", "task": TOY_TASK, "axes": {"toy.x": [0.1, 0.2, 0.3]}, "rules": rules or []}
    return launch_plan(build_plan(spec), launcher_cfg=OmegaConf.create(launcher),
                       results_dir=tmp_path / "results", sweep_dir=tmp_path / "sweeps",
                       search_path=SEARCH_PATH)  # fmt: skip


BASIC = {"_target_": "hydra._internal.core_plugins.basic_launcher.BasicLauncher"}


def test_failing_run_is_recorded_and_others_finish(tmp_path, monkeypatch):
    fail_mid = [{"when": {"toy.x": 0.2}, "set": {"toy.fail": True}}]
    outcome = _launch(tmp_path, monkeypatch, BASIC, fail_mid)
    assert outcome.statuses == {"done": 2, "failed": 1}
    df = ResultsStore(tmp_path / "results").load()
    failed = df[df["run/status"] == "failed"]
    assert list(failed["toy.x"]) == [0.2] and "failed on purpose" in failed["run/error"].iloc[0]
    assert sorted(df[df["run/status"] == "done"]["toy.x"]) == [0.1, 0.3]
    again = _launch(tmp_path, monkeypatch, BASIC, fail_mid)  # only the failed run is retried
    assert (again.already_done, again.launched) == (2, 1)


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path, monkeypatch):
    cfg = OmegaConf.load(ROOT / "conf" / "hydra" / "launcher" / "joblib.yaml")
    outcome = _launch(tmp_path, monkeypatch, OmegaConf.to_container(cfg))
    assert outcome.statuses == {"done": 3}
    assert len(ResultsStore(tmp_path / "results").done_hashes()) == 3


def test_slurm_launcher_submits_one_job_per_run(tmp_path, monkeypatch):
    """The slurm preset composes, sets GPUs/time/requeue, and its jobs run the task (sbatch faked)."""
    submitit = pytest.importorskip("submitit")
    with initialize_config_dir(CONF, version_base="1.3"):
        cfg = compose("sweep", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)  # fmt: skip
    launcher = cfg.hydra.launcher
    assert (
        launcher.gpus_per_node == 1
        and launcher.max_num_timeout == 3
        and launcher.partition == "gpu"
    )
    submitted: list[dict] = []

    class FakeJob:
        def __init__(self, result):
            self._result = result

        def results(self):
            return [self._result]

    def fake_map_array(self, fn, *args):
        submitted.append(dict(self._executor.parameters))
        return [FakeJob(fn(*a)) for a in zip(*args)]

    from submitit.slurm.slurm import SlurmExecutor

    monkeypatch.setattr(SlurmExecutor, "affinity", staticmethod(lambda: 1))  # pretend srun exists
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", fake_map_array)
    monkeypatch.setattr(submitit, "JobEnvironment", lambda: type("E", (), {"job_id": "42"})())
    launcher_cfg = OmegaConf.to_container(launcher, resolve=False)
    outcome = _launch(tmp_path, monkeypatch, launcher_cfg)
    assert outcome.statuses == {"done": 3}
    assert submitted and submitted[0]["gpus_per_node"] == 1 and submitted[0]["partition"] == "gpu"


def test_dry_run_prints_count(tmp_path):
    out = _sweep(tmp_path, "dry_run=true", "show=2")
    assert out.returncode == 0 and "9 runs" in out.stdout
    assert "[1] tests.helpers.toy_task:run toy.x=0.25 toy.y=1.0" in out.stdout


def test_dry_run_names_the_first_run_that_does_not_compose(tmp_path):
    out = _sweep(tmp_path, "dry_run=true", "+sweep.rules=[{when:{toy.x:0.5},set:{toy.bogus:1}}]")
    assert out.returncode == 2 and not out.stdout
    assert out.stderr.strip().splitlines()[-1] == (
        "memlab: error: run [3] (toy.x=0.5 toy.y=1.0 toy.bogus=1): "
        "toy.bogus: unknown key; add a new key with +toy.bogus=<value>"
    )


def test_a_run_that_does_not_compose_fails_alone(tmp_path, monkeypatch):
    """No job and no folder for it; a failed row with the composition error; the others run."""
    bad = [{"when": {"toy.x": 0.2}, "set": {"toy.bogus": 1}}]
    outcome = _launch(tmp_path, monkeypatch, BASIC, bad)
    assert outcome.statuses == {"failed": 1, "done": 2} and outcome.launched == 2
    (failed,) = outcome.failed
    assert failed.error == "toy.bogus: unknown key; add a new key with +toy.bogus=<value>"
    assert failed.log is None
    rows = ResultsStore(tmp_path / "results").rows()
    assert [r["run/status"] for r in rows].count("failed") == 1
    assert len(list((tmp_path / "sweeps").iterdir())) == 2  # one folder per launched run


def test_a_run_rejecting_its_input_leaves_no_folder(tmp_path, monkeypatch):
    bad = [{"when": {"toy.x": 0.2}, "set": {"toy.fail": "config"}}]
    outcome = _launch(tmp_path, monkeypatch, BASIC, bad)
    assert outcome.statuses == {"done": 2, "failed": 1}
    assert outcome.failed[0].error == "ConfigError: toy.x=0.2: rejected on purpose"
    assert len(list((tmp_path / "sweeps").iterdir())) == 2  # no folder for the rejected run


def test_failed_runs_end_the_sweep_with_status_1_and_a_summary(tmp_path):
    out = _sweep(tmp_path, "+sweep.rules=[{when:{toy.x:0.25,toy.y:2.0},set:{toy.fail:true}}]")
    assert out.returncode == 1
    assert "sweep 'toy_sweep': planned 9, already_done 0, launched 9" in out.stdout
    assert "1 run(s) failed:" in out.stderr and "failed on purpose" in out.stderr
    hash_ = ResultsStore(tmp_path / "outputs" / "results").load().query("`run/status` == 'failed'")
    (run_hash,) = hash_["run/hash"]
    log = tmp_path / "outputs" / "sweeps" / "toy_sweep" / run_hash / "run.log"
    assert f"{run_hash} toy.x=0.25 toy.y=2.0 toy.fail=true\n" in out.stderr
    assert f"log: {log}" in out.stderr
    assert "failed on purpose" in log.read_text()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_sigterm_stops_the_driver_and_its_joblib_workers(tmp_path):
    pids = tmp_path / "pids"
    fixed = f"+sweep.fixed={{toy.sleep:60,toy.pid_file:'{pids}'}}"
    env = {**os.environ, **ENV, "MEMLAB_ROOT": str(tmp_path)}
    cmd = _sweep_cmd("hydra/launcher=joblib", fixed)
    driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and len(pids.read_text().split() if pids.exists() else []) < 2:
        time.sleep(0.5)
    workers = [int(p) for p in pids.read_text().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)  # two runs are sleeping
    driver.send_signal(signal.SIGTERM)
    driver.communicate(timeout=60)
    assert driver.returncode != 0
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.5)
    assert not any(_alive(p) for p in workers)  # no orphaned worker keeps running a job


@pytest.mark.slow
def test_killed_training_sweep_resumes_its_run_from_the_epoch_it_reached(tmp_path):
    """The run dir is <sweep_dir>/<name>/<run hash>, so the re-run finds the killed run's last.ckpt
    and memlab.train resumes from it. PASSES ONLY WITH last.ckpt WRITTEN EVERY EPOCH (the training
    branch's checkpoint callback); before that the first last.ckpt appears at the end of training."""
    spec = ["sweep.name=tiny_train", "sweep.task=train", "max_runs=1",
            "+sweep.fixed={" + ",".join(o.replace("=", ":", 1) for o in TINY_OVERRIDES
                                       if not o.startswith(("~", "trainer.max_epochs")))
            + ",trainer.max_epochs:20}"]  # fmt: skip
    env = {**os.environ, **ENV, "MEMLAB_ROOT": str(tmp_path)}
    cmd = [sys.executable, "-m", "memlab.sweep", *spec, "~sweep.axes", "+sweep.axes={seed:[0]}"]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    sweep_dir = tmp_path / "outputs" / "sweeps" / "tiny_train"
    deadline = time.time() + 300
    while time.time() < deadline and not list(sweep_dir.glob("*/checkpoints/last.ckpt")):
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the run die at once, mid-training
    first.wait()
    (last,) = sweep_dir.glob("*/checkpoints/last.ckpt")
    import torch

    reached = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"])
    assert reached < 19  # killed before the end
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    log = (last.parent.parent / "run.log").read_text()
    assert f"resuming from {last}" in log
    (row,) = ResultsStore(tmp_path / "outputs" / "results").rows()
    assert row["run/status"] == "done"


def test_a_later_stage_addresses_the_run_directories_of_an_earlier_one(tmp_path):
    env = {**os.environ, **ENV, "MEMLAB_ROOT": str(tmp_path)}
    cmd = _sweep_cmd(experiment="toy_stages")
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "sweep 'toy_parents': planned 2" in out.stdout
    assert "sweep 'toy_children': planned 2" in out.stdout
    parents = sorted((tmp_path / "outputs" / "sweeps" / "toy_parents").iterdir())
    assert len(parents) == 2
    logged = sorted((p / "child.log").read_text() for p in parents)
    assert logged == ["0.1,3.0\n", "0.2,3.0\n"]  # each child wrote into its own parent's directory
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "sweep 'toy_children': planned 2, already_done 2, launched 0" in again.stdout
