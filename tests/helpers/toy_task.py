"""A cheap task for testing sweeps, the results store and W&B logging without training anything.

Its metrics are a deterministic function of ``toy.x`` and ``toy.y``; it can fail on purpose
(``toy.fail``) or die abruptly once (``toy.crash_once_marker``) to simulate a killed sweep, and it can
log every execution to a file (``toy.log_file``) so a test can prove finished runs are not redone,
and record its process id and sleep (``toy.pid_file``, ``toy.sleep``) so a test can stop a sweep while
its workers are busy. Its YAML is ``tests/helpers/conf/toy.yaml``: a sweep finds it through
``hydra.searchpath`` (:data:`SEARCH_PATH`) and runs it as :data:`TOY_TASK`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from memlab.errors import ConfigError
from memlab.runs import finish

TOY_CONF = Path(__file__).resolve().parent / "conf"
SEARCH_PATH = [f"file://{TOY_CONF}"]  # hydra.searchpath entries that find toy.yaml and toy_sweep
TOY_TASK = {"config": "toy", "target": "tests.helpers.toy_task:run"}  # a sweep spec's task


def _append(path: str | None, line: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"{line}\n")


def _crash_once(marker: str | None) -> None:
    """Kill the process (no cleanup, like SIGKILL) the first time; later calls pass."""
    if marker and not Path(marker).exists():
        Path(marker).touch()
        os._exit(3)


def run(cfg: Any) -> dict[str, Any]:
    """Compute toy metrics from the config (names follow the results-store schema)."""
    toy = cfg.toy
    x, y = float(toy.x), float(toy.y)
    _append(toy.get("pid_file"), str(os.getpid()))
    time.sleep(float(toy.get("sleep") or 0.0))
    if toy.get("crash_at") is not None and x == float(toy.crash_at):
        _crash_once(toy.get("crash_once_marker"))
    if toy.get("fail") == "config":
        raise ConfigError(f"toy.x={x}: rejected on purpose")
    if toy.get("fail"):
        raise RuntimeError(f"toy run x={x} y={y} failed on purpose")
    _append(toy.get("log_file"), f"{x},{y}")
    before_mem, before_ppl = 50.0, 20.0
    after_mem = max(0.0, before_mem * (1.0 - x))
    after_ppl = before_ppl * (1.0 + y * x)
    metrics = {
        "before/mem/perc": before_mem,
        "after/mem/perc": after_mem,
        "before/util/ppl": before_ppl,
        "after/util/ppl": after_ppl,
        "cost/seconds": 0.01 * (1 + x + y),
    }
    return finish(cfg, metrics)
