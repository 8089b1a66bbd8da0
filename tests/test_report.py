"""memlab.report: tables and PNG figures from the reference Pythia runs; loss landscapes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-results"
CONF = str(Path(__file__).resolve().parents[1] / "conf")


def report_cfg(tmp: Path, *overrides: str):
    with initialize_config_dir(CONF, version_base="1.3"):
        return compose(
            "report", overrides=[f"paths.root_dir={tmp}", f"out_dir={tmp}/report", *overrides]
        )


@pytest.mark.skipif(not SHARED.exists(), reason="../shared reference CSVs not available")
def test_report_on_reference_runs_writes_tables_and_figures(tmp_path):
    from memlab.report import build_report

    cfg = report_cfg(
        tmp_path,
        f"reference_csv={SHARED / 'all_pythia_unlearning_runs.csv'}",
        f"training_csv={SHARED / 'math_noise_training.csv'}",
    )
    result = build_report(cfg)
    assert len(result["best"]) == 80
    text = result["markdown"].read_text()
    assert "## pythia" in text and text.count("| balanced_subnet |") == 8
    for name in ("pythia/mem_vs_ppl", "pythia/cost", "training/mem_over_training"):
        path = result["figures"][name]
        assert path.suffix == ".png" and path.stat().st_size > 10_000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ref = (tmp_path / "report" / "best_pythia.reference.csv").read_text().splitlines()[0]
    assert ref.startswith(",perc,perp,localization_method,ratio,total_time")


def test_missing_or_empty_store_is_an_error_and_unscored_rows_are_listed(tmp_path):
    from memlab.errors import ConfigError
    from memlab.report import build_report
    from memlab.runs import ResultsStore

    cfg = report_cfg(tmp_path)
    with pytest.raises(ConfigError, match="no results store"):
        build_report(cfg)
    store = ResultsStore(cfg.results)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text("")
    with pytest.raises(ConfigError, match="holds no rows"):
        build_report(cfg)
    unlearned = {"run/task": "unlearn", "run/status": "done", "unlearn.method": "greedy",
                 "before/mem/perc": 50.0, "after/mem/perc": 10.0, "data.builder": "tea_leaves"}  # fmt: skip
    store.append({**unlearned, "run/hash": "a"})
    store.append({"run/hash": "b", "run/task": "train", "run/status": "done"})
    store.append({"run/hash": "c", "run/task": "unlearn", "run/status": "failed", "run/error": "E: x"})
    text = build_report(cfg)["markdown"].read_text()
    assert "run a: matches no setting (data.builder=tea_leaves" in text
    assert "1 train run(s): not unlearning runs" in text and "failed run c (unlearn): E: x" in text


def test_loss_landscape_is_centered_and_restores_weights(tmp_path):
    from memlab.analysis.landscape import compare_edit, loss_landscape_2d, plot_landscapes

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def loss_fn(m: torch.nn.Module) -> float:
        return float(torch.nn.functional.mse_loss(m(x), y))

    before = [p.clone() for p in model.parameters()]
    land = loss_landscape_2d(model, loss_fn, steps=5, distance=1.0)
    assert land.losses.shape == (5, 5)
    assert land.losses[2, 2] == pytest.approx(loss_fn(model))  # the grid centre is the model itself
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    edited = torch.nn.Sequential(*[torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)])
    edited.load_state_dict(model.state_dict())
    with torch.no_grad():
        edited[0].weight[:4] = 0  # an "edit": zero some MLP rows
    a, b = compare_edit(model, edited, loss_fn, steps=5)
    path = plot_landscapes({"before": a, "after edit": b}, tmp_path / "landscape.png")
    assert path.stat().st_size > 5_000
