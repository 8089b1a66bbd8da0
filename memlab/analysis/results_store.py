"""The results store: one JSON line per run (config keys + metrics + seconds + status).

The reference appended rows to per-checkpoint CSVs by reading and rewriting the whole file
(unlearning-methods.md §3.7), which loses rows when parallel jobs write at once, and it decided
"already done" by comparing every argument column (§13 item 21). Here:

- each row is written with a single ``os.write`` on an ``O_APPEND`` descriptor while holding an
  exclusive ``flock``, so parallel joblib/SLURM jobs can append to one file safely;
- a run is identified by :func:`run_hash` — the hash of its task and composed config, minus keys that
  do not change the science (output paths, loggers) — and :meth:`ResultsStore.is_done` tells a sweep
  to skip it, which makes re-running a sweep command resume it;
- a truncated last line (a job killed mid-write) is skipped on read instead of breaking the store.

Row schema (flat): config keys flattened with dots (``unlearn.method``, ``model.n_layer``, ``seed``),
metrics with ``/``-grouped names (``mem/perc``, ``util/acc/7``, ``util/ppl``, ``cost/seconds``;
unlearning rows carry ``before/<metric>`` and ``after/<metric>``), and ``run/hash``, ``run/status``
(done | failed), ``run/error``, ``run/task``, ``run/time`` (ISO), ``run/seconds``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memlab.utils.hashing import config_hash

try:  # POSIX advisory locks; on other systems O_APPEND single writes alone keep rows whole
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STORE_FILE = "results.jsonl"
DONE, FAILED = "done", "failed"
# Top-level config keys that do not change a run's result: where outputs go and how they are logged.
# Same list as memlab.utils.cli.run_hash, so standalone task runs and sweep runs share one identity.
HASH_IGNORE: tuple[str, ...] = ("paths", "hydra", "logger", "callbacks", "results")


def _plain(cfg: Any, resolve: bool) -> dict[str, Any]:
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=resolve)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    return dict(cfg)


def run_hash(cfg: Any, ignore: Iterable[str] = HASH_IGNORE) -> str:
    """Identity of a run: hash of its *unresolved* config minus ``ignore`` keys.

    Unresolved, so that a sweep driver (outside the job) and the job itself agree even when the
    config interpolates Hydra runtime values such as ``${hydra:runtime.output_dir}``. The task is part
    of the config (``task_name``), so runs of different tasks never collide.
    """
    skip = set(ignore)
    return config_hash({k: v for k, v in _plain(cfg, resolve=False).items() if k not in skip})


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings with dotted keys; lists become JSON strings (one cell each)."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(value, default=str)
        else:
            out[name] = value
    return out


def config_columns(cfg: Any) -> dict[str, Any]:
    """The config part of a row: resolved where possible (inside a job), minus the ``hydra`` node."""
    try:
        plain = _plain(cfg, resolve=True)
    except Exception:  # interpolations that need a Hydra runtime: keep them as written
        plain = _plain(cfg, resolve=False)
    plain.pop("hydra", None)
    return flatten(plain)


class ResultsStore:
    """Append-only JSON-lines table of runs, safe for concurrent appends from parallel jobs."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        path = Path(path)
        self.path = path if path.suffix == ".jsonl" else path / STORE_FILE

    def append(self, row: Mapping[str, Any]) -> None:
        """Write one row as one line, atomically with respect to other writers."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(dict(row), default=str, sort_keys=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)  # closing releases the lock

    def rows(self) -> list[dict[str, Any]]:
        """All complete rows in file order (a torn or corrupt line is skipped with a warning)."""
        if not self.path.exists():
            return []
        out = []
        with open(self.path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s:%d: skipping an incomplete row", self.path, number)
        return out

    def done_hashes(self) -> set[str]:
        """Hashes of runs that finished successfully (read once per sweep)."""
        return {r.get("run/hash") for r in self.rows() if r.get("run/status") == DONE}

    def is_done(self, hash_: str) -> bool:
        return hash_ in self.done_hashes()

    def load(self, latest: bool = True) -> Any:
        """The store as a pandas DataFrame; ``latest`` keeps one row per run hash.

        With ``latest`` a successful row wins over failed attempts of the same run, and among equals
        the last written wins (a failed run that was retried and finished counts once).
        """
        import pandas as pd

        df = pd.DataFrame(self.rows())
        if df.empty or not latest or "run/hash" not in df:
            return df
        done_first = (df["run/status"] == DONE).astype(int)
        order = df.assign(_done=done_first, _pos=range(len(df))).sort_values(["_done", "_pos"])
        kept = order.drop_duplicates("run/hash", keep="last").sort_values("_pos")
        return kept.drop(columns=["_done", "_pos"]).reset_index(drop=True)

    def export_reference_csv(self, path: str | os.PathLike[str], kind: str = "pythia_all") -> Path:
        """Write the store's unlearning rows in a reference CSV schema (paper-results.md §7).

        ``kind``: ``pythia_all`` (``all_pythia_unlearning_runs.csv`` columns, one base row per
        model × step), ``pythia_best`` (``best_pythia_unlearning_runs.csv`` columns; pass selected
        rows through :func:`memlab.analysis.reference_csv.to_reference` instead to get best runs only)
        or ``tinymem`` (``figs/csv/*_localization.csv`` columns).
        """
        from memlab.analysis.reference_csv import to_reference

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        to_reference(self.load(), kind).to_csv(out)
        return out
