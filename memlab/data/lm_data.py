"""The data every run trains and evaluates on: fixed-length token tensors plus named artifact sets.

Artifact rows, their clean twins, duplication groups and the test sets are first-class objects,
never positions in a tuple (the reference returns a 7-tuple). Also the steps every data family
shares — deterministic splits, assembling the training tensor, keeping the non-members that no
training row equals — and the cache's file names and reading.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from memlab.data.artifacts import repeat_groups, rows_in
from memlab.runs import config_hash

log = logging.getLogger(__name__)
T = TypeVar("T")
DATA_SEED = 598  # the reference's fixed split seed (independent of the run seed)
CACHE_VERSION = 1  # bump when generation changes, so stale caches are not reused
# bump when LMData gains a field, so older data caches are rebuilt (token and BPE caches are kept);
# 2: LMData.nonmembers
LM_DATA_VERSION = 2


@dataclass
class ArtifactSet:
    """Rows that carry a planted artifact, row-aligned with their clean twins.

    ``start`` is the per-row position where the scored continuation begins: ``None`` means the
    evaluation's fixed prompt length (noise); backdoors set it to the position right after the
    trigger (deviations.md D16).
    """

    kind: str  # "noise" | "backdoor" | "natural" (sequences a model memorized on its own, e.g. Pythia)
    rows: torch.Tensor  # [A, T] noised / poisoned rows
    clean: torch.Tensor  # [A, T] their clean versions
    groups: list[torch.Tensor]  # duplication groups: indices into rows
    powers: list[int]  # group g is repeated 10**powers[g] times in training
    start: torch.Tensor | None = None  # [A] continuation start per row (backdoor)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def subset(self, index: torch.Tensor) -> ArtifactSet:
        """The rows ``index`` as one group (e.g. one duplication group or the memorized rows)."""
        start = None if self.start is None else self.start[index]
        n = int(index.numel())
        return ArtifactSet(
            self.kind, self.rows[index], self.clean[index], [torch.arange(n)], [0], start
        )


@dataclass
class LMData:
    """Everything a TinyMem run needs: training rows with per-row metadata, artifacts, test sets."""

    train: torch.Tensor  # [N, T]; the artifact block comes first
    train_dist: torch.Tensor  # [N] index into dist_names
    train_twin: torch.Tensor  # [N] index into artifact.rows, -1 for clean rows
    train_group: torch.Tensor  # [N] duplication group of artifact rows, -1 for clean rows
    dist_names: list[str]
    test: dict[str, torch.Tensor]  # clean test sets per distribution
    artifact: ArtifactSet | None  # the training artifact rows (the memorization targets)
    heldout: ArtifactSet | None = (
        None  # held-out triggered rows (backdoor success is measured here)
    )
    # rows built like the artifact (noised / triggered) from rows never trained on, for membership
    # audits: len(artifact) rows, fewer only when the data holds fewer such rows (logged)
    nonmembers: ArtifactSet | None = None
    trigger: list[int] | None = None  # trigger token ids (backdoor)
    vocab_size: int = 14
    pad_id: int = 13
    eos_id: int = 11
    bos_id: int = 10
    info: dict = field(default_factory=dict)

    @property
    def max_ctx(self) -> int:
        return int(self.train.shape[1])

    def memorization_set(self) -> ArtifactSet | None:
        """Where memorization is measured: held-out triggered rows for backdoors, else the artifact."""
        return self.heldout if self.heldout is not None else self.artifact

    def clean_train(self) -> torch.Tensor:
        """All training rows without any artifact (the retain set of unlearning, deviations.md D49)."""
        return self.train[self.train_twin < 0]

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        state = asdict(self)
        tmp = Path(str(path) + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> LMData:
        state = torch.load(path, weights_only=True)
        for key in ("artifact", "heldout", "nonmembers"):
            if state.get(key) is not None:
                state[key] = ArtifactSet(**state[key])
        return cls(**state)


def split_indices(
    n: int, num_test: int, seed: int = DATA_SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random permutation of ``n`` from ``seed`` with a local generator (never the global torch
    RNG, deviations.md D01): the last ``num_test`` are test."""
    if not 0 <= num_test <= n:
        raise ValueError(f"num_test={num_test} must lie in [0, {n}]")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n - num_test], perm[n - num_test :]


def assemble_training(
    artifact: ArtifactSet | None,
    clean_blocks: list[tuple[int, torch.Tensor]],
    artifact_dist: int = 0,
) -> dict[str, torch.Tensor]:
    """The training tensor and its per-row metadata (LMData's ``train*`` fields): the artifact
    rows repeated per duplication group, then the clean blocks — (distribution index, rows) pairs.
    The artifact block comes first, as in the reference."""
    parts, dist, twin, group = [], [], [], []
    if artifact is not None and len(artifact):
        index, group_id = repeat_groups(artifact.groups, artifact.powers)
        parts.append(artifact.rows[index])
        dist.append(torch.full_like(index, artifact_dist))
        twin.append(index)
        group.append(group_id)
    for dist_id, rows in clean_blocks:
        n = rows.shape[0]
        parts.append(rows)
        dist.append(torch.full((n,), dist_id, dtype=torch.long))
        twin.append(torch.full((n,), -1, dtype=torch.long))
        group.append(torch.full((n,), -1, dtype=torch.long))
    return {
        "train": torch.cat(parts),
        "train_dist": torch.cat(dist),
        "train_twin": torch.cat(twin),
        "train_group": torch.cat(group),
    }


def nonmember_set(parts: list[ArtifactSet], n: int, *, train: torch.Tensor) -> ArtifactSet:
    """The first ``n`` rows of ``parts`` (ArtifactSets of rows never trained on, concatenated)
    that equal no training row, as one group; fewer, with a warning, when the data holds fewer."""
    start = None if parts[0].start is None else torch.cat([p.start for p in parts])
    candidates = ArtifactSet(
        parts[0].kind,
        torch.cat([p.rows for p in parts]),
        torch.cat([p.clean for p in parts]),
        [],
        [],
        start,
    )
    unseen = (~rows_in(candidates.rows, train)).nonzero().squeeze(1)
    if len(unseen) < n:
        log.warning(
            "only %d %s rows outside the training set for the %d artifact rows: "
            "data.nonmembers holds %d rows",
            len(unseen),
            candidates.kind,
            n,
            len(unseen),
        )
    return candidates.subset(unseen[:n])


def cache_path(cache_dir: str | Path, prefix: str, key: Any) -> Path:
    """The cache file for ``key`` (a hash of it): data, token streams and trained BPEs — tensors,
    never pickled loaders (deviations.md D09)."""
    return Path(cache_dir) / f"{prefix}-{config_hash({'v': CACHE_VERSION, 'key': key})}.pt"


def read_cache(path: Path, load: Callable[[Path], T]) -> T | None:
    """``load(path)`` when the cache file exists and can be read, else None: a truncated or stale
    file is only derived data, so it is rebuilt (with a warning) instead of failing the run."""
    if not path.exists():
        return None
    try:
        value = load(path)
    except (OSError, RuntimeError, EOFError, KeyError, TypeError, pickle.UnpicklingError) as err:
        log.warning("cache file %s cannot be read (%s): rebuilding it", path, type(err).__name__)
        return None
    log.info("cache hit: %s", path)
    return value
