"""Artifacts on token-id data (language TinyMem): id noise and a random trigger token.

Language noise is an id shift, not a semantic edit: every token id moves by 0 / −1 / +1 with
probabilities 0.9 / 0.05 / 0.05. The reference can shift id 0 to −1 and the last id to V (out of
the vocabulary, a crash; deviations.md D04). Here a shift never leaves the ordinary tokens:

- ``reflect`` (default): a shift that would leave [0, V) or land on a special token (EOS/pad) goes
  the other way (id − offset), so a noised token still differs from the clean one by exactly one id
  and never becomes EOS, which the memorization metric can never generate (deviations.md D04);
- ``wrap``: the alternative, (id + offset) mod V, skipping nothing.

Special tokens in the clean row (e.g. the final block's padding) are never noised.
"""

from __future__ import annotations

import random

import torch

from memlab.data.artifacts import noise_offsets
from memlab.errors import ConfigError

NOISE_BOUNDARIES = ("reflect", "wrap")


def noised_ids(
    rows: torch.Tensor,
    rng: random.Random,
    probs: list[float],
    *,
    vocab_size: int,
    special_ids: list[int],
    boundary: str = "reflect",
) -> torch.Tensor:
    """``rows`` with every id shifted by a draw from {0, −1, +1}; one draw per token, row by row
    (the reference's ``random.choices(k=T)`` per chunk)."""
    if boundary not in NOISE_BOUNDARIES:
        raise ConfigError(f"data.noise_boundary='{boundary}'; known: {', '.join(NOISE_BOUNDARIES)}")
    n, width = rows.shape
    offsets = torch.tensor([noise_offsets(rng, width, probs) for _ in range(n)], dtype=rows.dtype)
    offsets = offsets.reshape(n, width)
    special = torch.tensor(special_ids, dtype=rows.dtype)
    if boundary == "wrap":
        shifted = (rows + offsets) % vocab_size
    else:
        shifted = _reflected(rows, offsets, vocab_size=vocab_size, special=special)
    return torch.where(torch.isin(rows, special), rows, shifted)


def _reflected(
    rows: torch.Tensor, offsets: torch.Tensor, *, vocab_size: int, special: torch.Tensor
) -> torch.Tensor:
    def outside(ids: torch.Tensor) -> torch.Tensor:
        return (ids < 0) | (ids >= vocab_size) | torch.isin(ids, special)

    shifted = rows + offsets
    shifted = torch.where(outside(shifted), rows - offsets, shifted)
    return torch.where(outside(shifted), rows, shifted)


def first_after(rows: torch.Tensor, token: int) -> torch.Tensor:
    """Per row, the position right after the first occurrence of ``token`` (−1 when absent):
    where a single-token backdoor starts (trigger index + 1)."""
    hit = rows == token
    found = hit.any(dim=1)
    first = hit.int().argmax(dim=1)
    return torch.where(found, first + 1, torch.full_like(first, -1))


def rows_containing(rows: torch.Tensor, vocab_size: int, chunk: int = 65536) -> torch.Tensor:
    """For each id, the number of rows it occurs in (chunked, so wikitext-103 fits in memory)."""
    counts = torch.zeros(vocab_size, dtype=torch.long)
    for lo in range(0, rows.shape[0], chunk):
        ids, _ = rows[lo : lo + chunk].sort(dim=1)
        first = torch.ones_like(ids, dtype=torch.bool)
        first[:, 1:] = ids[:, 1:] != ids[:, :-1]
        counts += torch.bincount(ids[first].clamp(0, vocab_size - 1), minlength=vocab_size)
    return counts


def random_trigger(
    pool: torch.Tensor,
    rng: random.Random,
    *,
    vocab_size: int,
    excluded: list[int],
    min_rows: int,
) -> int:
    """A trigger token drawn per seed (deviations.md D05).

    ``min_rows = 0`` is the reference: ``randrange(V)`` over the whole vocabulary, which may pick a
    token that never occurs (then no row is triggered). ``min_rows > 0`` draws uniformly among the
    ordinary tokens (not ``excluded``) that occur in at least that many rows of ``pool`` — the
    reference's draw conditioned on yielding a usable backdoor.
    """
    if min_rows <= 0:
        return rng.randrange(vocab_size)
    counts = rows_containing(pool, vocab_size)
    counts[torch.tensor(excluded, dtype=torch.long)] = 0
    candidates = (counts >= min_rows).nonzero().squeeze(1).tolist()
    if not candidates:
        raise ConfigError(
            f"no token occurs in data.trigger_min_rows={min_rows} rows; lower it or use more text"
        )
    return rng.choice(candidates)
