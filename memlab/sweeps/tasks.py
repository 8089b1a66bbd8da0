"""Tasks a sweep can run: a name from the table below, or a task written outside memlab.

The sweep launches runs of tasks written elsewhere (``memlab.train``, ``memlab.unlearn``,
``memlab.finetune``), each exposing ``run(cfg) -> dict`` of flat metrics. A sweep spec's ``task`` is
either a name of :data:`TASKS` or a mapping ``{config: <primary config>, target: "module:function"}``
(a task outside the package, e.g. a test fixture; its YAML is found through ``hydra.searchpath``).
The entry point is resolved lazily from its import string, so a sweep plan can be built (and
dry-run) before those modules are imported, and joblib/submitit workers pickle only two strings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from memlab.errors import ConfigError, lookup


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's config and code live."""

    config_name: str  # primary config (e.g. "unlearn" for conf/unlearn.yaml)
    target: str  # "package.module:function" returning a flat metrics dict

    @property
    def name(self) -> str:
        """The task's name: its primary config."""
        return self.config_name

    def command(self) -> str:
        """How one run is started by hand (memlab's tasks are modules of the package)."""
        in_package = self.target.startswith("memlab.")
        return f"python -m memlab.{self.config_name}" if in_package else self.target

    def resolve(self) -> Callable[[Any], dict[str, Any]]:
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise ConfigError(f"task entry point {self.target} cannot be imported: {err}") from err
        if not hasattr(module, attr):
            raise ConfigError(f"task entry point {self.target}: module has no '{attr}'")
        return getattr(module, attr)


# task name -> where its primary config and its run(cfg) live (plain references, imported on use)
TASKS: dict[str, TaskSpec] = {
    "train": TaskSpec("train", "memlab.train:run"),
    "unlearn": TaskSpec("unlearn", "memlab.unlearn.runner:run"),
    "finetune": TaskSpec("finetune", "memlab.finetune:run"),
    "audit": TaskSpec("audit", "memlab.audit.runner:run"),
}


def get_task(task: str | Mapping[str, Any]) -> TaskSpec:
    """The spec of a table task, or of ``{config, target}``; anything else fails in one line."""
    if isinstance(task, Mapping):
        if set(task) != {"config", "target"} or ":" not in str(task["target"]):
            raise ConfigError(
                f"sweep.task={dict(task)}: a task outside the table needs exactly "
                "{config: <primary config>, target: 'module:function'}"
            )
        return TaskSpec(str(task["config"]), str(task["target"]))
    return lookup(TASKS, task, kind="task", key="sweep.task")
