"""The data contract (DESIGN.md "Data"): fixed-length token tensors plus named artifact objects.

Artifact rows, their clean twins, duplication groups and the test sets are first-class objects,
never positions in a tuple (the reference's 7-tuple, spec §1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


@dataclass
class ArtifactSet:
    """Rows that carry a planted artifact, row-aligned with their clean twins.

    ``start`` is the per-row position where the scored continuation begins: ``None`` means the
    evaluation's fixed prompt length (noise); backdoors set it to the position right after the
    trigger (spec §10.2, Q10 fixed).
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
        """All training rows without any artifact (the retain set of unlearning, Q14 fixed)."""
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
