"""Find the trained checkpoint to fine-tune from the results store (for grids such as
``experiment=paper/finetune``), when no explicit ``ckpt=`` is given.

A finished training run's results-store row holds its config columns, among them
``paths.output_dir``; its checkpoint is ``<output_dir>/checkpoints/last.ckpt``. The selector
``base`` names the run by a few friendly keys (data, artifact, seed, depth, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from memlab.errors import ConfigError

COLUMNS = {  # selector key → results-store column
    "task": "run/task",
    "data": "data.name",
    "artifact": "artifact.kind",
    "seed": "seed",
    "n_layer": "model.n_layer",
    "num_extra": "data.num_extra",
    "regularizer": "regularizer.name",
}


def wanted_columns(selector: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(selector) - set(COLUMNS)
    if unknown:
        raise ConfigError(
            f"unknown base selector key(s) {sorted(unknown)}; known: {sorted(COLUMNS)}"
        )
    return {COLUMNS[k]: v for k, v in selector.items() if v is not None}


def find_base_checkpoint(results_dir: str | Path, selector: Mapping[str, Any]) -> Path:
    """The ``last.ckpt`` of the latest finished run matching ``selector`` in the results store."""
    from memlab.runs import ResultsStore

    want = wanted_columns(selector)
    found = [
        Path(row["paths.output_dir"]) / "checkpoints" / "last.ckpt"
        for row in ResultsStore(Path(results_dir)).rows()
        if row.get("run/status") == "done"
        and row.get("paths.output_dir")
        and all(row.get(col) == val for col, val in want.items())
    ]
    found = [path for path in found if path.is_file()]
    if not found:
        raise ConfigError(
            f"ckpt is not set and no finished run with a checkpoint matches base={want} in "
            f"{results_dir}; pass ckpt=<path to last.ckpt>"
        )
    return found[-1]
