"""Every kind of bad input, over every entry point, ends the way the README promises: exit status 2,
no traceback, the last line ``memlab: error: ...`` naming the key or the file, and nothing left
behind — no results row, no run folder. Each case runs the real ``main()`` in-process (Hydra parses
the command line as it does for ``python -m memlab.<task>``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from memlab.models.edit import Edit

# (task, arguments, what the error line must name); {ckpt}, {garbage}, {edit} are filled in below
CASES = [
    ("train", ["data=foo"], "data=foo"),
    ("train", ["model=gpt5"], "model=gpt5"),
    ("train", ["experiment=nope"], "experiment=nope"),
    ("train", ["logger=carrier_pigeon"], "logger=carrier_pigeon"),
    ("train", ["trainer.max_epochs=abc"], "trainer.max_epochs=abc"),
    ("train", ["seed=abc"], "seed=abc"),
    ("train", ["data.num_main=lots"], "data.num_main=lots"),
    ("train", ["train.batch_size=0"], "train.batch_size=0"),
    ("train", ["trainer.max_epochs=-1"], "trainer.max_epochs=-1"),
    ("train", ["data.max_ctx=10"], "data.max_ctx=10"),
    ("train", ["artifact.noise_probs=[0.9,0.3,0.3]"], "artifact.noise_probs"),
    ("train", ["regularizer=spectral_norm", "regularizer.lam=-1"], "regularizer.lam=-1"),
    ("train", ["optim.lr=0"], "optim.lr=0"),
    ("train", ["optim.lr=fast"], "optim.lr=fast"),
    ("train", ["foo=1"], "foo"),
    ("train", ["ckpt_path=/nonexistent/last.ckpt"], "ckpt_path=/nonexistent/last.ckpt"),
    ("train", ["eval.k=0"], "eval.k=0"),
    ("train", ["model.n_layer=0"], "model.n_layer=0"),
    ("train", ["train.eval_every=0"], "train.eval_every=0"),
    ("train", ["data.num_test=-5"], "data.num_test=-5"),
    ("train", ["train.mask_padding=maybe"], "train.mask_padding=maybe"),
    ("train", ["data.num_main=100", "data.num_test=100"], "data.num_test=100"),
    ("unlearn", ["unlearn=nope"], "unlearn=nope"),
    ("unlearn", [], "ckpt"),
    ("unlearn", ["ckpt=/nonexistent.ckpt"], "/nonexistent.ckpt"),
    ("unlearn", ["ckpt={garbage}"], "{garbage}"),
    ("unlearn", ["ckpt={ckpt}", "unlearn.ratio=2"], "unlearn.ratio=2"),
    ("unlearn", ["ckpt={ckpt}", "unlearn.epochs=-3"], "unlearn.epochs=-3"),
    ("unlearn", ["ckpt={ckpt}", "unlearn.loss_weighting=5"], "unlearn.loss_weighting=5"),
    ("unlearn", ["ckpt={ckpt}", "unlearn.batch_size=0"], "unlearn.batch_size=0"),
    ("unlearn", ["ckpt={ckpt}", "unlearn.compat=sometimes"], "unlearn.compat=sometimes"),
    ("unlearn", ["ckpt={ckpt}", "apply_edit=/nonexistent/edit.safetensors"], "apply_edit="),
    ("unlearn", ["ckpt={ckpt}", "apply_edit={garbage_edit}"], "{garbage_edit}"),
    ("unlearn", ["ckpt={ckpt}", "apply_edit={edit}"], "{edit}"),
    ("unlearn", ["ckpt={ckpt}", "data=mult"], "data"),
    ("evaluate", [], "ckpt"),
    ("evaluate", ["ckpt=/nonexistent.ckpt"], "/nonexistent.ckpt"),
    ("evaluate", ["ckpt={garbage}"], "{garbage}"),
    ("finetune", ["finetune=nope"], "finetune=nope"),
    ("finetune", [], "ckpt"),
    ("finetune", ["ckpt={ckpt}", "finetune.epochs=0"], "finetune.epochs=0"),
    ("finetune", ["ckpt={ckpt}", "finetune.lr=-1"], "finetune.lr=-1"),
    ("sweep", [], "experiment"),
    ("sweep", ["experiment=nope"], "experiment=nope"),
    ("sweep", ["experiment=paper/unlearn_tinymem", "max_runs=0"], "max_runs=0"),
    ("report", ["results=/nonexistent"], "results=/nonexistent"),
    ("report", ["max_cells=0"], "max_cells=0"),
    ("mine", [], "source"),
    ("mine", ["seq_len=abc"], "seq_len=abc"),
    ("demo", ["ckpt=/nonexistent.ckpt"], "/nonexistent.ckpt"),
]
MODULES = {"unlearn": "memlab.unlearn.__main__"}


@pytest.fixture(scope="module")
def files(tiny_run, tmp_path_factory) -> dict[str, str]:
    """A real checkpoint, a garbage checkpoint, a garbage edit and an edit of a parameter the model
    does not have."""
    tmp = tmp_path_factory.mktemp("bad_files")
    garbage, garbage_edit = tmp / "garbage.ckpt", tmp / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 not a checkpoint" * 64)
    garbage_edit.write_bytes(b"\x07 not an edit" * 64)
    foreign = Edit(
        "greedy", {"transformer.h.7.mlp.c_fc.weight": torch.ones(4, 4, dtype=torch.bool)}
    )
    edit = foreign.save(tmp / "foreign_edit.safetensors")
    paths = {"ckpt": tiny_run.ckpt, "garbage": garbage, "garbage_edit": garbage_edit, "edit": edit}
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize(
    ("task", "args", "names"), CASES, ids=[" ".join([c[0], *c[1]]) for c in CASES]
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    task, args, names, files, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("MEMLAB_ROOT", str(tmp_path))
    monkeypatch.setattr(sys, "argv", [f"memlab-{task}", *[a.format(**files) for a in args]])
    main = importlib.import_module(MODULES.get(task, f"memlab.{task}")).main
    with pytest.raises(SystemExit) as stop:
        main()
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert stop.value.code == 2, err[-2000:]
    assert "Traceback" not in err
    assert last.startswith("memlab: error:") and names.format(**files) in last, last
    left = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert left == [], left


def test_the_table_covers_every_entry_point():
    assert {c[0] for c in CASES} == {
        "train", "unlearn", "evaluate", "finetune", "sweep", "report", "mine", "demo"
    } and len(CASES) >= 40  # fmt: skip


def test_a_console_script_prints_the_same_line(tmp_path):
    """The installed CLI, as a subprocess from another directory: one line, exit 2."""
    import subprocess

    exe = Path(sys.executable).with_name("memlab-train")
    cmd = [
        str(exe) if exe.exists() else sys.executable,
        *([] if exe.exists() else ["-m", "memlab.train"]),
    ]
    proc = subprocess.run([*cmd, "train.batch_size=0"], cwd=tmp_path, capture_output=True, text=True,
                          env={**__import__("os").environ, "MEMLAB_ROOT": str(tmp_path)}, timeout=120)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "memlab: error: train.batch_size=0: out of range; an integer >= 1"
    ]
    assert not (tmp_path / "outputs").exists()
