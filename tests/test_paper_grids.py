"""The paper's grids compose, run for run, with the hyperparameters the reference ran with.

Every run of every paper plan is composed exactly as its sweep job composes it (the sweep launcher's
loader), in every context: TinyMem unlearning at depth 2/4/8/16 x mult/increment/wikitext x
noise/backdoor x the four training points; Pythia 2.8B/6.9B x four training steps; every training,
regularizer and fine-tuning run. ``REFERENCE`` lists, per method and setting, the values the
reference ran with and the reference function or script they come from. The default suite composes
one context per grid; the slow tier composes them all (about 20 minutes on 2 cores).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from memlab.analysis.conditions import matches
from memlab.sweeps.launch import check_plan, compose_master, compose_run, make_loader, run_dirs
from memlab.sweeps.plan import PlannedRun, SweepPlan, build_plan, expand_each, stage_specs
from tests.helpers.configs import CONF_DIR

MATH = ["mult", "increment"]
MASKS = ["slimming", "hard_concrete"]
# (grid, which runs: a condition on the run's overrides and context, config key, value, source)
REFERENCE: list[tuple[str, dict[str, Any], str, Any, str]] = [
    # ---- TinyMem unlearning: localizing_memorization.py via localize_hp_sweep.py
    ("unlearn_tinymem", {"unlearn": "greedy"}, "unlearn.batch_size", 64, "do_greedy(extra_data, forget, model, 64, ratio)"),
    ("unlearn_tinymem", {"unlearn": "balanced_subnet"}, "unlearn.batch_size", 64, "do_random_greedy(..., batch_size=64, ...) (driver passes none)"),
    ("unlearn_tinymem", {"unlearn": "balanced_subnet"}, "unlearn.lr", 0.1, "localizing_memorization.py --lr 0.1"),
    ("unlearn_tinymem", {"unlearn": "balanced_subnet"}, "unlearn.momentum", 0.9, "--momentum 0.9"),
    ("unlearn_tinymem", {"unlearn": "balanced_subnet"}, "unlearn.weight_decay", 5e-4, "--weight_decay 0.0005"),
    ("unlearn_tinymem", {"unlearn": "subnet"}, "unlearn.batch_size", 64, "do_random(..., batch_size=64) (driver passes none)"),
    ("unlearn_tinymem", {"unlearn": "subnet"}, "unlearn.lr", 0.1, "do_random(..., lr=0.1, momentum=0.9, wd=5e-4)"),
    ("unlearn_tinymem", {"unlearn": "durable"}, "unlearn.batch_size", 64, "do_durable(model, forget, ratio): DataLoader(forget, 64)"),
    ("unlearn_tinymem", {"unlearn": "durable_aggregate"}, "unlearn.batch_size", 64, "do_durable(..., aggregate=True): DataLoader(forget, 64)"),
    ("unlearn_tinymem", {"unlearn": "second_order"}, "unlearn.batch_size", 64, "do_obs(model, forget, ratio, 512, 50, 1e-7): DataLoader(forget, 64)"),
    ("unlearn_tinymem", {"unlearn": "second_order"}, "unlearn.num_grads", 512, "do_obs(..., num_grads=512, ...) (--num_grads 512)"),
    ("unlearn_tinymem", {"unlearn": "second_order"}, "unlearn.block_size", 50, "do_obs(..., block_size=50, ...)"),
    ("unlearn_tinymem", {"unlearn": "second_order"}, "unlearn.damp", 1e-7, "do_obs(..., lambd=1e-7)"),
    ("unlearn_tinymem", {"unlearn": "zero_out"}, "unlearn.batch_size", 64, "fast_zero_out_vector: DataLoader(forget, 64)"),
    ("unlearn_tinymem", {"unlearn": "activations"}, "unlearn.batch_size", 512, "largest_act(..., batch_size=512) (--batch_size default)"),
    ("unlearn_tinymem", {"unlearn": MASKS}, "unlearn.batch_size", 32, "localize_hp_sweep.py: --batch_size 32 for slim/hc"),
    ("unlearn_tinymem", {"unlearn": MASKS}, "unlearn.lr", 0.1, "slim/hard_concrete(..., lr=0.1)"),
    ("unlearn_tinymem", {"unlearn": MASKS}, "unlearn.lambda_l1", 1000, "--lambda_l1 1000"),
    ("unlearn_tinymem", {"unlearn": MASKS}, "unlearn.stop_loss", 0.1, "--stop_loss 0.1"),
    ("unlearn_tinymem", {"unlearn": "integrated_gradients"}, "unlearn.steps", 20, "ig_full_data: 20 steps hard-coded (ig_steps {20})"),
    # ---- Pythia unlearning: prod_grade.py via parsl_localize_nersc.py
    ("unlearn_pythia", {"unlearn": "greedy"}, "unlearn.batch_size", 32, "prod_grade.py: do_greedy(..., args.batch_size=32, ...)"),
    ("unlearn_pythia", {"unlearn": "greedy"}, "unlearn.ratio", 1e-5, "localize_hp_sweep.py: Pythia greedy only at 1e-5"),
    ("unlearn_pythia", {"unlearn": "balanced_subnet"}, "unlearn.batch_size", 32, "do_random_greedy(..., batch_size=args.batch_size=32)"),
    ("unlearn_pythia", {"unlearn": "subnet"}, "unlearn.batch_size", 32, "do_random(..., batch_size=args.batch_size=32)"),
    ("unlearn_pythia", {"unlearn": MASKS}, "unlearn.batch_size", 32, "slim/hard_concrete(..., args.batch_size=32)"),
    ("unlearn_pythia", {"unlearn": ["durable", "durable_aggregate"]}, "unlearn.batch_size", 64, "do_durable: DataLoader(forget, 64)"),
    ("unlearn_pythia", {"unlearn": "activations"}, "unlearn.batch_size", 64, "largest_act(..., batch_size=64) (prod_grade passes none)"),
    # ---- base training: parsl_basic_train.py
    ("train_tinymem", {}, "train.batch_size", 128, "parsl_basic_train.py: batch {128}"),
    ("train_tinymem", {}, "optim.lr", 1e-3, "parsl_basic_train.py: lr {1e-3}"),
    ("train_tinymem", {"data": MATH, "artifact": "noise"}, "trainer.max_epochs", 3500, "math noise: 3500 epochs"),
    ("train_tinymem", {"data": MATH, "artifact": "noise"}, "callbacks.model_checkpoint.keep_epochs", [500, 1500, 2500, 3500], "parsl_localize.py: math noise epochs"),
    ("train_tinymem", {"data": MATH, "artifact": "backdoor"}, "trainer.max_epochs", 500, "math backdoor: 500 epochs"),
    ("train_tinymem", {"data": MATH, "artifact": "backdoor"}, "callbacks.model_checkpoint.keep_epochs", [50, 200, 350, 500], "parsl_localize.py: math backdoor epochs"),
    ("train_tinymem", {"data": MATH}, "artifact.duplicate", False, "math only dup=0"),
    ("train_tinymem", {"data": "wikitext"}, "artifact.duplicate", True, "wiki only dup=1"),
    ("train_tinymem", {"data": "wikitext", "artifact": "noise"}, "artifact.dup_powers", [0, 1, 2, 3], "duplicate=1, wiki noise: powers [0,1,2,3]"),
    ("train_tinymem", {"data": "wikitext", "artifact": "noise"}, "trainer.max_epochs", 100, "wiki noise: 100 epochs"),
    ("train_tinymem", {"data": "wikitext", "artifact": "noise"}, "callbacks.model_checkpoint.keep_epochs", [10, 40, 70, 100], "parsl_localize.py: wiki noise epochs"),
    ("train_tinymem", {"data": "wikitext", "artifact": "backdoor"}, "artifact.dup_powers", [2], "duplicate=1, wiki backdoor: x100"),
    ("train_tinymem", {"data": "wikitext", "artifact": "backdoor"}, "trainer.max_epochs", 50, "wiki backdoor: 50 epochs"),
    ("train_tinymem", {"data": "wikitext", "artifact": "backdoor"}, "callbacks.model_checkpoint.keep_epochs", [10, 20, 30, 50], "parsl_localize.py: wiki backdoor epochs"),
    # ---- regularizers: parsl_regularize_train.py
    ("regularizers", {}, "model.n_layer", 4, "parsl_regularize_train.py: 4 layers only"),
    ("regularizers", {"data": "mult"}, "data.num_extra", 3000, "parsl_regularize_train.py: extra size 3000"),
    ("regularizers", {"data": "wikitext", "artifact": "noise"}, "artifact.dup_powers", [0, 1, 2, 3], "wiki_fast duplicated: powers [0,1,2,3]"),
    ("regularizers", {"regularizer": "example_tied_dropout"}, "regularizer.p_mem", 0.1, "example-tied dropout: default p_mem 0.1"),
    # ---- fine-tuning: parsl_ft.py / ft_toy_model.py
    ("finetune", {}, "finetune.epochs", 5, "parsl_ft.py: --epochs = base epochs + 5"),
    ("finetune", {}, "finetune.lr", 1e-3, "parsl_ft.py: lr 1e-3"),
    ("finetune", {}, "base.n_layer", 4, "parsl_ft.py: 4 layers"),
]  # fmt: skip

# per-checkpoint runs of the TinyMem unlearning grid (localize_hp_sweep.py's filters)
PER_CHECKPOINT = {(False, False): 167, (True, False): 163, (False, True): 166, (True, True): 163}
POINTS = {
    ("mult", "noise"): [500, 1500, 2500, 3500], ("increment", "noise"): [500, 1500, 2500, 3500],
    ("mult", "backdoor"): [50, 200, 350, 500], ("increment", "backdoor"): [50, 200, 350, 500],
    ("wikitext", "noise"): [10, 40, 70, 100], ("wikitext", "backdoor"): [10, 20, 30, 50],
}  # fmt: skip
TINYMEM_CONTEXTS = [
    (n_layer, data, artifact)
    for n_layer in (2, 4, 8, 16)
    for data in ("mult", "increment", "wikitext")
    for artifact in ("noise", "backdoor")
]
PYTHIA_CONTEXTS = [
    (model, step)
    for model in ("pythia_2.8b", "pythia_6.9b")
    for step in ("step36000", "step72000", "step108000", "step143000")
]


def plan_for(grid: str, *overrides: str) -> SweepPlan:
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("sweep", overrides=[f"experiment=paper/{grid}", *overrides])
    return build_plan(OmegaConf.to_container(cfg.sweep, resolve=True))  # type: ignore[arg-type]


def composed(plan: SweepPlan) -> Iterator[tuple[PlannedRun, DictConfig]]:
    """Every run's config, composed as the sweep's job composes it."""
    loader = make_loader()
    master = compose_master(loader, plan.task.config_name, ["hydra.job.chdir=false"])
    for run in plan.runs:
        yield run, compose_run(loader, master, run.override_strings())


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key, default="<missing>")
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def check_reference(grid: str, plan: SweepPlan) -> set[int]:
    """Compose every run and compare it with the reference table; returns the rows that applied."""
    rows = [(i, r) for i, r in enumerate(REFERENCE) if r[0] == grid]
    applied: set[int] = set()
    for run, cfg in composed(plan):
        view: Mapping[str, Any] = run.as_dict()
        assert "ig_steps" not in str(view) and "ig_steps" not in cfg.get("unlearn", {})
        for i, (_, when, key, expected, source) in rows:
            if matches(when, view):
                assert _value(cfg, key) == expected, f"{run.command()}: {key} ({source})"
                applied.add(i)
    return applied


def tinymem_plan(n_layer: int, data: str, artifact: str, *more: str) -> SweepPlan:
    """The unlearning plan of one training run (its four points unless ``more`` picks one)."""
    return plan_for("unlearn_tinymem", f"sweep.context.ckpt_dir=/runs/{data}_{artifact}_{n_layer}",
                    f"sweep.context.n_layer={n_layer}", f"sweep.context.data={data}",
                    f"sweep.context.artifact={artifact}", *more)  # fmt: skip


def check_tinymem_counts(plan: SweepPlan, n_layer: int, data: str, artifact: str) -> None:
    """The same runs at each of the setting's four training points, as many as the filters give."""
    per_ckpt = plan.count_by("ckpt")
    expected = PER_CHECKPOINT[(n_layer == 16, data == "wikitext")]
    assert set(per_ckpt.values()) == {expected}
    ckpt_dir = f"/runs/{data}_{artifact}_{n_layer}"
    points = POINTS[(data, artifact)]
    assert sorted(per_ckpt) == sorted(f"{ckpt_dir}/checkpoints/epoch={e:04d}.ckpt" for e in points)


def subset(plan: SweepPlan, **values: Any) -> SweepPlan:
    """The runs of a plan whose overrides have the given values (keys with "." written "__")."""
    want = {k.replace("__", "."): v for k, v in values.items()}
    keep = [r for r in plan.runs if matches(want, r.as_dict())]
    return SweepPlan(plan.name, plan.task, keep)


def pythia_plan(model: str, step: str) -> SweepPlan:
    return subset(plan_for("unlearn_pythia"), model=model, model__revision=step)


def setting_plan(grid: str, data: str, artifact: str) -> SweepPlan:
    """The runs of one (data, artifact) setting of a training / regularizer / fine-tuning grid."""
    if grid == "finetune":
        return subset(plan_for(grid), base__data=data, base__artifact=artifact)
    return subset(plan_for(grid), data=data, artifact=artifact)


# --------------------------------------------------------------------------- default suite
@pytest.mark.slow  # default-suite budget: covered faster elsewhere or by the slow tier
def test_tinymem_unlearning_one_checkpoint_composes_with_reference_hyperparameters():
    plan = tinymem_plan(4, "mult", "noise", "sweep.context.epoch=3500")
    assert len(plan) == 167 and set(plan.count_by("ckpt")) == {
        "/runs/mult_noise_4/checkpoints/epoch=3500.ckpt"
    }
    applied = check_reference("unlearn_tinymem", plan)
    assert applied == {i for i, r in enumerate(REFERENCE) if r[0] == "unlearn_tinymem"}


def test_tinymem_unlearning_addresses_the_four_training_points():
    for data, artifact in POINTS:
        check_tinymem_counts(tinymem_plan(4, data, artifact), 4, data, artifact)


@pytest.mark.slow  # default-suite budget: covered faster elsewhere or by the slow tier
def test_pythia_unlearning_one_cell_composes_with_reference_hyperparameters():
    plan = pythia_plan("pythia_2.8b", "step143000")
    assert len(plan) == 152
    applied = check_reference("unlearn_pythia", plan)
    assert applied == {i for i, r in enumerate(REFERENCE) if r[0] == "unlearn_pythia"}


@pytest.mark.parametrize(("grid", "setting"), [("train_tinymem", ("wikitext", "noise")),
                                               ("regularizers", ("wikitext", "noise")),
                                               ("finetune", ("mult", "noise"))])  # fmt: skip
def test_training_grids_one_setting_compose_with_reference_hyperparameters(grid, setting):
    plan = setting_plan(grid, *setting)
    assert len(plan) == {"train_tinymem": 12, "regularizers": 21, "finetune": 9}[grid]
    assert check_reference(grid, plan)


def test_planned_run_counts():
    assert len(plan_for("train_tinymem")) == 168
    assert len(plan_for("regularizers")) == 84
    assert len(plan_for("finetune")) == 54
    assert len(plan_for("unlearn_pythia")) == 1216
    assert len(tinymem_plan(4, "mult", "noise")) == 4 * 167


# --------------------------------------------------------------------------- slow tier
@pytest.mark.slow
@pytest.mark.parametrize(("n_layer", "data", "artifact"), TINYMEM_CONTEXTS)
def test_every_tinymem_unlearning_context(n_layer, data, artifact):
    plan = tinymem_plan(n_layer, data, artifact)
    check_tinymem_counts(plan, n_layer, data, artifact)
    assert check_reference("unlearn_tinymem", plan)


@pytest.mark.slow
@pytest.mark.parametrize(("model", "step"), PYTHIA_CONTEXTS)
def test_every_pythia_unlearning_context(model, step):
    plan = pythia_plan(model, step)
    assert len(plan) == 152 and check_reference("unlearn_pythia", plan)


@pytest.mark.slow
@pytest.mark.parametrize("grid", ["train_tinymem", "regularizers", "finetune"])
def test_every_training_grid_run(grid):
    applied = check_reference(grid, plan_for(grid))
    assert applied == {i for i, r in enumerate(REFERENCE) if r[0] == grid}


# --------------------------------------------------------------------------- the mini study
def mini_plans() -> dict[str, SweepPlan]:
    """The stages of experiment=paper/mini, later ones expanded over stage 1's run directories."""
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("sweep", overrides=["experiment=paper/mini"])
    plans: dict[str, SweepPlan] = {}
    for stage in stage_specs(OmegaConf.to_container(cfg.sweep, resolve=True)):  # type: ignore[arg-type]
        if stage.get("each"):
            parent = plans[stage["each"]["stage"]]
            plan = expand_each(stage, run_dirs(parent, sweep_dir=f"/mini/{parent.name}"))
        else:
            plan = build_plan(stage)
        plans[plan.name] = plan
    return plans


def test_mini_study_stages_and_counts():
    plans = mini_plans()
    assert {name: len(plan) for name, plan in plans.items()} == {
        "mini_train": 6, "mini_regularizers": 3, "mini_finetune": 9, "mini_unlearn": 1080,
    }  # fmt: skip
    per_ckpt = plans["mini_unlearn"].count_by("ckpt")
    assert len(per_ckpt) == 24 and set(per_ckpt.values()) == {45}
    assert all(str(c).startswith("/mini/mini_train/") for c in per_ckpt)
    assert len(plans["mini_unlearn"].count_by("unlearn")) == 11


@pytest.mark.slow
def test_every_mini_run_composes():
    for plan in mini_plans().values():
        check_plan(plan)
