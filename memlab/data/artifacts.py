"""Artifacts planted for memorization: noise, backdoors and duplication.

All randomness comes from local generators, so building data never moves the global RNGs.
"""

from __future__ import annotations

import random

import torch


def noise_offsets(rng: random.Random, n: int, probs: list[float]) -> list[int]:
    """``n`` draws from {0, −1, +1} with the given probabilities (reference: 0.9/0.05/0.05)."""
    return rng.choices([0, -1, 1], weights=probs, k=n)


def trigger_ends(rows: torch.Tensor, trigger: list[int], chunk: int = 8192) -> torch.Tensor:
    """Per row, the position right after the first trigger occurrence (−1 when absent)."""
    ends = torch.full((rows.shape[0],), -1, dtype=torch.long)
    m = len(trigger)
    if m == 0 or rows.shape[1] < m:
        return ends
    pattern = torch.tensor(trigger, dtype=rows.dtype)
    for lo in range(0, rows.shape[0], chunk):
        hit = (rows[lo : lo + chunk].unfold(1, m, 1) == pattern).all(dim=2)
        found = hit.any(dim=1)
        first = hit.int().argmax(dim=1)
        ends[lo : lo + chunk] = torch.where(found, first + m, torch.full_like(first, -1))
    return ends


def poison(rows: torch.Tensor, ends: torch.Tensor, token: int) -> torch.Tensor:
    """Backdoor: every position from ``ends[r]`` to the end of the row becomes ``token``."""
    positions = torch.arange(rows.shape[1]).unsqueeze(0)
    return torch.where(positions >= ends.unsqueeze(1), torch.full_like(rows, token), rows)


def duplication_groups(n: int, powers: list[int], rng: random.Random) -> list[torch.Tensor]:
    """Shuffle the artifact indices and deal them round-robin into one group per power."""
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
    """Give ``artifact`` (an ArtifactSet) its duplication groups for ``powers``: one group
    of every row when there is a single power, else a shuffled round-robin deal."""
    artifact.powers = list(powers)
    artifact.groups = (
        duplication_groups(len(artifact), artifact.powers, rng)
        if len(artifact.powers) > 1
        else [torch.arange(len(artifact))]
    )
    return artifact


def nonmember_rng(seed: int) -> random.Random:
    """The non-members' own generator: building them never moves the training draws of ``seed``."""
    return random.Random(f"nonmembers:{seed}")


def row_hashes(rows: torch.Tensor) -> torch.Tensor:
    """One int64 per row (a fixed random projection, wrapping): equal rows, equal hashes."""
    weights = torch.randint(
        -(2**62), 2**62, (rows.shape[1],), generator=torch.Generator().manual_seed(0)
    )
    return (rows.long() * weights).sum(dim=1)


def rows_in(rows: torch.Tensor, table: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Per row of ``rows``, whether it equals some row of ``table`` (hash, then exact check)."""
    hashes = [row_hashes(table[lo : lo + chunk]) for lo in range(0, len(table), chunk)]
    sorted_hashes, order = torch.cat(hashes).sort()
    wanted = row_hashes(rows)
    lo = torch.searchsorted(sorted_hashes, wanted)
    hi = torch.searchsorted(sorted_hashes, wanted, right=True)
    found = torch.zeros(len(rows), dtype=torch.bool)
    for r in (hi > lo).nonzero().squeeze(1).tolist():
        same_hash = table[order[lo[r] : hi[r]]]
        found[r] = bool((same_hash == rows[r]).all(dim=1).any())
    return found
