"""Artifacts planted for memorization (spec §3.4, §5, §6): noise, backdoors and duplication.

All randomness comes from local generators, so building data never moves the global RNGs.
"""

from __future__ import annotations

import random

import torch


def noise_offsets(rng: random.Random, n: int, probs: list[float]) -> list[int]:
    """``n`` draws from {0, −1, +1} with the given probabilities (reference: 0.9/0.05/0.05)."""
    return rng.choices([0, -1, 1], weights=probs, k=n)


def find_subsequence(row: torch.Tensor, pattern: list[int]) -> int:
    """Index of the first occurrence of ``pattern`` in ``row``, or −1."""
    n, m = int(row.numel()), len(pattern)
    if m == 0 or n < m:
        return -1
    windows = row.unfold(0, m, 1)
    hits = (windows == torch.tensor(pattern, dtype=row.dtype)).all(dim=1).nonzero()
    return int(hits[0]) if hits.numel() else -1


def trigger_ends(rows: torch.Tensor, trigger: list[int]) -> torch.Tensor:
    """Per row, the position right after the first trigger occurrence (−1 when absent)."""
    ends = torch.full((rows.shape[0],), -1, dtype=torch.long)
    for r in range(rows.shape[0]):
        pos = find_subsequence(rows[r], trigger)
        if pos >= 0:
            ends[r] = pos + len(trigger)
    return ends


def poison(rows: torch.Tensor, ends: torch.Tensor, token: int) -> torch.Tensor:
    """Backdoor: every position from ``ends[r]`` to the end of the row becomes ``token`` (spec §5.2)."""
    positions = torch.arange(rows.shape[1]).unsqueeze(0)
    return torch.where(positions >= ends.unsqueeze(1), torch.full_like(rows, token), rows)


def duplication_groups(n: int, powers: list[int], rng: random.Random) -> list[torch.Tensor]:
    """Shuffle the artifact indices and deal them round-robin into one group per power (spec §6)."""
    order = list(range(n))
    rng.shuffle(order)
    return [
        torch.tensor(sorted(order[g :: len(powers)]), dtype=torch.long) for g in range(len(powers))
    ]


def repeat_groups(
    groups: list[torch.Tensor], powers: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Artifact indices as they appear in training (group g repeated 10**powers[g] times) and the
    group id of each training row."""
    index, group_id = [], []
    for g, (idx, power) in enumerate(zip(groups, powers, strict=True)):
        repeated = idx.repeat(10**power)
        index.append(repeated)
        group_id.append(torch.full_like(repeated, g))
    return torch.cat(index), torch.cat(group_id)


def grouped(artifact, powers: list[int], rng: random.Random):
    """Give ``artifact`` (an ArtifactSet) its duplication groups for ``powers`` (spec §6): one group
    of every row when there is a single power, else a shuffled round-robin deal."""
    artifact.powers = list(powers)
    artifact.groups = (
        duplication_groups(len(artifact), artifact.powers, rng)
        if len(artifact.powers) > 1
        else [torch.arange(len(artifact))]
    )
    return artifact
