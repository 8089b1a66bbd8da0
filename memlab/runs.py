"""The run layer, memlab's ground floor: what every task shares.

- the identity of a run (:func:`run_hash`) and its flat config columns;
- the run directory, ``summary.json`` + ``config.yaml``, and one :func:`record` of a results row;
- the results store: one JSON line per run (config keys + metrics + ``run/*`` bookkeeping);
- Trainer keyword arguments from a ``trainer`` config;
- :func:`entry_point`: the one ``@hydra.main`` shape of every task, with memlab's error handling.

Results store. Each row is written with a single ``os.write`` on an ``O_APPEND`` descriptor while
holding an exclusive ``flock``, so parallel joblib/SLURM jobs can append to one file safely; a torn
last line (a job killed mid-write) is skipped on read. A run is identified by the hash of its task and
composed config, minus keys that do not change the science (output paths, loggers), so re-running a
sweep skips runs that are already done. Row schema (flat): config keys flattened with dots
(``unlearn.method``, ``model.n_layer``, ``seed``), metrics with ``/``-grouped names (``mem/perc``,
``util/acc/7``, ``util/ppl``, ``cost/seconds``; unlearning rows carry ``before/<metric>`` and
``after/<metric>``), and ``run/hash``, ``run/task``, ``run/status`` (done | failed), ``run/error``,
``run/time`` (UTC, ISO 8601), ``run/seconds``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from memlab.errors import ConfigError, RunError
from memlab.schema import validate

try:  # POSIX advisory locks; on other systems O_APPEND single writes alone keep rows whole
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

STORE_FILE = "results.jsonl"
DONE, FAILED = "done", "failed"
# Top-level config keys that do not change a run's result: where outputs go and how they are logged.
HASH_IGNORE: tuple[str, ...] = ("paths", "hydra", "logger", "callbacks", "results")


def _conf_dir() -> Path:
    """The config tree: packaged beside the code in an installed wheel, else the checkout's conf/."""
    packaged = Path(__file__).parent / "conf"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "conf"


CONF_DIR = _conf_dir()


# --------------------------------------------------------------------------- identity and rows
def plain(obj: Any, *, resolve: bool = True) -> Any:
    """OmegaConf containers (and tuples) as plain JSON-able Python objects."""
    if isinstance(obj, DictConfig | ListConfig):
        return OmegaConf.to_container(obj, resolve=resolve)
    if isinstance(obj, Mapping):
        return {str(k): plain(v, resolve=resolve) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, resolve=resolve) for v in obj]
    return obj


def config_hash(obj: Any, length: int = 16) -> str:
    """Hex digest of a config, independent of key order (data caches and run identities)."""
    text = json.dumps(plain(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def run_hash(cfg: Any, ignore: Iterable[str] = HASH_IGNORE) -> str:
    """Identity of a run: hash of its *unresolved* config minus ``ignore`` keys.

    Unresolved, so that a sweep driver (outside the job) and the job itself agree even when the
    config interpolates Hydra runtime values such as ``${hydra:runtime.output_dir}``. The task is part
    of the config (``task_name``), so runs of different tasks never collide.
    """
    skip = set(ignore)
    return config_hash({k: v for k, v in plain(cfg, resolve=False).items() if k not in skip})


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
        tree = plain(cfg, resolve=True)
    except Exception:  # interpolations that need a Hydra runtime: keep them as written
        tree = plain(cfg, resolve=False)
    tree.pop("hydra", None)
    return flatten(tree)


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


# --------------------------------------------------------------------------- a run's outputs
def output_dir(cfg: DictConfig) -> Path:
    """The run directory: ``paths.output_dir`` (the Hydra run dir under ``@hydra.main``)."""
    try:
        path = Path(cfg.paths.output_dir)
    except Exception:  # outside Hydra the ${hydra:} interpolation cannot resolve
        from hydra.core.hydra_config import HydraConfig

        path = Path(HydraConfig.get().runtime.output_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_summary(cfg: DictConfig, metrics: Mapping[str, Any], out: Path) -> Path:
    """``summary.json`` (final metrics + run hash) and ``config.yaml`` (resolved config) in ``out``."""
    path = out / "summary.json"
    payload = {"run/hash": run_hash(cfg), "run/task": cfg.task_name, **metrics}
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=float))
    try:
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    except Exception:  # an unresolvable interpolation must not lose the summary
        (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return path


def results_row(
    cfg: Any,
    metrics: Mapping[str, Any],
    *,
    status: str = DONE,
    error: str | None = None,
    seconds: float | None = None,
) -> dict[str, Any]:
    """A results-store row: config columns, metrics, and the ``run/*`` bookkeeping."""
    row = {**config_columns(cfg), **metrics}
    if seconds is not None:
        row.setdefault("cost/seconds", seconds)
        row["run/seconds"] = seconds
    row.update(
        {
            "run/hash": run_hash(cfg),
            "run/task": cfg.get("task_name"),
            "run/status": status,
            "run/error": error,
            "run/time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
    )
    return row


def results_dir(cfg: Any) -> Path:
    return Path(cfg.paths.results_dir)


def record(
    cfg: Any,
    metrics: Mapping[str, Any],
    *,
    status: str = DONE,
    error: str | None = None,
    seconds: float | None = None,
) -> dict[str, Any] | None:
    """Append the run's one row to the results store (unless ``results: false``); returns it."""
    if not cfg.get("results", True):
        return None
    row = results_row(cfg, metrics, status=status, error=error, seconds=seconds)
    ResultsStore(results_dir(cfg)).append(row)
    return row


def finish(cfg: DictConfig, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The end of every successful task: ``summary.json`` in the run directory and one row."""
    out = output_dir(cfg)
    write_summary(cfg, metrics, out)
    record(cfg, metrics)
    log.info("summary written to %s", out / "summary.json")
    return dict(metrics)


# --------------------------------------------------------------------------- trainer settings
def trainer_kwargs(trainer_cfg: DictConfig | dict) -> dict[str, Any]:
    """``pl.Trainer(**trainer_kwargs(cfg.trainer))``: the strategy instantiated when it is an object
    config (``_target_``, as in the DeepSpeed/DDP presets); a plain string passes through."""
    from hydra.utils import instantiate

    kwargs = OmegaConf.to_container(OmegaConf.create(trainer_cfg), resolve=True)
    strategy = kwargs.get("strategy")
    if isinstance(strategy, dict) and "_target_" in strategy:
        kwargs["strategy"] = instantiate(strategy)
    return kwargs


def deepspeed_config_of(strategy: Any) -> dict | None:
    """The DeepSpeed config dict a constructed strategy will use (None for other strategies)."""
    is_deepspeed = type(strategy).__name__ == "DeepSpeedStrategy"
    return getattr(strategy, "config", None) if is_deepspeed else None


# --------------------------------------------------------------------------- entry points
RunFn = Callable[[DictConfig], Mapping[str, Any]]


def fail(message: str) -> None:
    """End the program with memlab's one-line error and exit status 2."""
    print(f"memlab: error: {message}", file=sys.stderr)
    sys.exit(2)


def _hydra_run_dir() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # not inside a Hydra job
        return None


def _remove_if_empty(run_dir: Path | None) -> None:
    """Remove a run directory that holds only Hydra's own files (bad input leaves nothing behind)."""
    if run_dir is None or not run_dir.is_dir():
        return
    own = {".hydra", "run.log"}
    if all(p.name in own for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def guarded(run: RunFn, cfg: DictConfig) -> Mapping[str, Any]:
    """Validate ``cfg`` (:func:`memlab.schema.validate`), then ``run(cfg)``.

    Bad input (:class:`ConfigError`, a missing file) ends with one line and exit status 2, leaving no
    results row and no run directory; a run that fails later (:class:`RunError`, or any other error)
    records a ``failed`` row with the error's one line, prints it and exits with status 1 (the full
    traceback goes to the run's log file).
    """
    try:
        validate(cfg)
        return run(cfg)
    except (ConfigError, FileNotFoundError) as err:
        _remove_if_empty(_hydra_run_dir())
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    except Exception as err:
        log.exception("run failed")
        line = error_line(err)
        record(cfg, {}, status=FAILED, error=line)
        print(f"memlab: error: {line}", file=sys.stderr)
        sys.exit(1)
    raise AssertionError("unreachable")


def error_line(err: BaseException) -> str:
    """``<Type>: <message>`` on one line (the message's last non-empty line): a results row's
    ``run/error`` and the console's last line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    name = "" if isinstance(err, RunError) else f"{type(err).__name__}: "
    return f"{name}{lines[-1] if lines else ''}".strip()


def hydra_error_line(err: Exception) -> str:
    """One line for Hydra's composition errors (an unknown group option, a malformed override)."""
    options = getattr(err, "options", None)
    missing = getattr(err, "missing_cfg_file", None)
    if options is not None and missing:
        group, _, choice = str(missing).rpartition("/")
        return f"{group}={choice}: unknown option; known: {', '.join(sorted(options))}"
    text = str(err)
    if text.startswith("Could not override '"):
        key = text.split("'")[1]
        return f"{key}: unknown key; add a new key with +{key}=<value>"
    return " ".join(text.split())


def entry_point(config_name: str, run: RunFn) -> Callable[[], None]:
    """The ``main()`` of a task: Hydra composes ``conf/<config_name>.yaml`` with the command line,
    then ``run(cfg)`` runs; every kind of bad input ends with one line and exit status 2."""

    def task(cfg: DictConfig) -> None:
        guarded(run, cfg)

    task.__name__ = config_name
    task.__module__ = f"memlab.{config_name}"

    def main() -> None:
        import hydra
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises: the errors become one line here
        wrapped = hydra.main(config_path=str(CONF_DIR), config_name=config_name, version_base="1.3")
        try:
            wrapped(task)()
        except (HydraException, OmegaConfBaseException) as err:
            fail(hydra_error_line(err))

    main.__doc__ = run.__doc__
    return main
