"""TinyMem math data: ``increment`` and ``mult`` sequence families.

An example with index i starts at x₀ = i and lists f(x₀), f(f(x₀)), … (``length`` values). The main
distribution uses multiplier/step 7; four extra distributions use 2, 3, 4, 5. Noise moves numbers
by ±1 before tokenization; backdoors overwrite everything after a digit-substring trigger with
token 2; duplication repeats artifact groups 10**g times. Non-members (membership audits) are built
like the artifact from main rows never trained on: noised test-split rows, or held-out triggered
rows; both topped up with fresh rows (x₀ ≥ num_main) when there are fewer than artifact rows.

Differences from the reference (docs/deviations.md): local RNGs only (deviations.md D01), a noised
value is clamped at 0 rather than silently losing its minus sign (deviations.md D02), noise indices
are drawn from the actual train split (deviations.md D03).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from memlab.data import math_tokenizer as tok
from memlab.data.artifacts import (
    duplication_groups,
    noise_offsets,
    nonmember_rng,
    poison,
    trigger_ends,
)
from memlab.data.lm_data import (
    DATA_SEED,
    ArtifactSet,
    LMData,
    assemble_training,
    nonmember_set,
    split_indices,
)
from memlab.errors import ConfigError, lookup

MODULUS = 20134
MAIN, EXTRAS = 7, (2, 3, 4, 5)
FRESH_BLOCKS = 4  # non-member top-ups scan at most this many num_main-sized blocks of fresh x₀


@dataclass(frozen=True)
class Family:
    """A sequence family: ``step(a)`` is the map x ↦ f_a(x); ``num_starts`` bounds the distinct
    starting values x₀ (mult works modulo MODULUS; None = unbounded)."""

    step: Callable[[int], Callable[[int], int]]
    num_starts: int | None


FAMILIES: dict[str, Family] = {
    "increment": Family(lambda a: lambda x: x + a, None),
    "mult": Family(lambda a: lambda x: (a * x) % MODULUS, MODULUS),
}


def family(cfg) -> Family:
    return lookup(FAMILIES, cfg.name, kind="data family", key="data.name")


def sequence_values(
    step: Callable[[int], int], n: int, length: int, *, first: int = 0
) -> list[list[int]]:
    """``n`` sequences; example i lists the ``length`` iterates of ``step`` from x₀ = ``first`` + i."""
    rows = []
    for i in range(first, first + n):
        x, values = i, []
        for _ in range(length):
            x = step(x)
            values.append(x)
        rows.append(values)
    return rows


def _noised(values: list[list[int]], rng: random.Random, probs: list[float]) -> list[list[int]]:
    out = []
    for row in values:
        offsets = noise_offsets(rng, len(row), probs)
        out.append([max(0, v + o) for v, o in zip(row, offsets, strict=True)])
    return out


def _check(cfg, artifact_cfg, n_train: int) -> None:
    if cfg.num_test >= cfg.num_main or cfg.num_test >= cfg.num_extra:
        raise ConfigError(
            f"data.num_test={cfg.num_test} must be smaller than data.num_main={cfg.num_main} "
            f"and data.num_extra={cfg.num_extra}"
        )
    if artifact_cfg.kind == "noise" and not 0 < artifact_cfg.num_noise <= n_train:
        raise ConfigError(
            f"artifact.num_noise={artifact_cfg.num_noise} must lie in [1, {n_train}] "
            f"(the main distribution's train split)"
        )


def build_math_data(cfg, artifact_cfg, seed: int) -> LMData:
    """Build the dataset for ``cfg`` (the ``data`` group) and ``artifact_cfg`` (the ``artifact``
    group) with run seed ``seed`` (noise draws, noise indices, duplication shuffle, trigger)."""
    make = family(cfg).step
    rng = random.Random(seed)
    main_values = sequence_values(make(MAIN), cfg.num_main, cfg.length)
    main = tok.encode_batch(main_values, cfg.max_ctx)
    split_seed = cfg.get("data_seed", DATA_SEED)
    train_idx, test_idx = split_indices(cfg.num_main, cfg.num_test, split_seed)
    _check(cfg, artifact_cfg, len(train_idx))

    extras_train, test = [], {}
    for d, a in enumerate(EXTRAS, start=1):
        rows = tok.encode_batch(sequence_values(make(a), cfg.num_extra, cfg.length), cfg.max_ctx)
        tr, te = split_indices(cfg.num_extra, cfg.num_test, split_seed)
        extras_train.append((d, rows[tr]))
        test[str(a)] = rows[te]

    kind = artifact_cfg.kind
    heldout, trigger = None, None
    nonmembers_rng = nonmember_rng(seed)
    if kind == "noise":
        chosen = torch.tensor(rng.sample(range(len(train_idx)), artifact_cfg.num_noise))
        rows_idx = train_idx[chosen]
        noised = tok.encode_batch(
            _noised(
                [main_values[i] for i in rows_idx.tolist()], rng, list(artifact_cfg.noise_probs)
            ),
            cfg.max_ctx,
        )
        keep = torch.ones(len(train_idx), dtype=torch.bool)
        keep[chosen] = False
        artifact = _with_groups(
            ArtifactSet("noise", noised, main[rows_idx], [], []), artifact_cfg, rng
        )
        clean_main, test_main = main[train_idx[keep]], main[test_idx]
        unseen = [main_values[i] for i in test_idx.tolist()]
        nonmembers = _noise_nonmembers(unseen, nonmembers_rng, cfg=cfg, artifact_cfg=artifact_cfg)
    elif kind == "backdoor":
        artifact, heldout, clean_main, test_main, trigger = _backdoor(
            main, rng, cfg=cfg, artifact_cfg=artifact_cfg, seed=seed
        )
        nonmembers = _backdoor_nonmembers(
            heldout, cfg, n=len(artifact), trigger=trigger, token=artifact_cfg.backdoor_token
        )
    elif kind == "none":
        artifact, clean_main, test_main = None, main[train_idx], main[test_idx]
        nonmembers = None
    else:
        raise ConfigError(f"unknown artifact.kind '{kind}'; known: backdoor, noise, none")

    test = {str(MAIN): test_main, **test}
    parts = assemble_training(artifact, [(0, clean_main), *extras_train])
    if nonmembers is not None:
        nonmembers = nonmember_set(nonmembers, len(artifact), train=parts["train"])
    return LMData(
        **parts,
        dist_names=[str(MAIN), *map(str, EXTRAS)],
        test=test,
        artifact=artifact,
        heldout=heldout,
        nonmembers=nonmembers,
        trigger=trigger,
        vocab_size=tok.VOCAB_SIZE,
        pad_id=tok.PAD,
        eos_id=tok.EOS,
        bos_id=tok.BOS,
        info={"family": cfg.name, "seed": seed},
    )


def _fresh_main_rows(cfg, *, first: int, n: int) -> list[list[int]]:
    """Main-distribution sequences from x₀ = ``first`` … ``first + n − 1`` (x₀ ≥ num_main: rows no
    split ever holds; never past the family's distinct starts) that fit in ``data.max_ctx``."""
    limit = family(cfg).num_starts
    n = n if limit is None else max(0, min(n, limit - first))
    values = sequence_values(family(cfg).step(MAIN), n, cfg.length, first=first)
    max_ctx = cfg.max_ctx
    return [v for v in values if len(tok.sequence_text(v)) <= max_ctx]


def _noise_nonmembers(
    unseen: list[list[int]], rng: random.Random, *, cfg, artifact_cfg
) -> list[ArtifactSet]:
    """``num_noise`` clean main rows never trained on, noised like the artifact: a sample of the
    main test split, topped up with fresh rows (x₀ ≥ num_main) when the test split is smaller."""
    n = artifact_cfg.num_noise
    if len(unseen) >= n:
        values = [unseen[i] for i in rng.sample(range(len(unseen)), n)]
    else:
        values = unseen + _fresh_main_rows(cfg, first=cfg.num_main, n=n - len(unseen))
    noised = _noised(values, rng, list(artifact_cfg.noise_probs))
    clean, rows = tok.encode_batch(values, cfg.max_ctx), tok.encode_batch(noised, cfg.max_ctx)
    return [ArtifactSet("noise", rows, clean, [], [])]


def _backdoor_nonmembers(
    heldout: ArtifactSet, cfg, *, n: int, trigger: list[int], token: int
) -> list[ArtifactSet]:
    """Triggered rows never trained on, poisoned like the artifact: the held-out triggered rows,
    then ``n`` triggered fresh main rows (x₀ ≥ num_main, at most FRESH_BLOCKS blocks), so that
    ``n`` remain after dropping any that equal a training row."""
    parts = [heldout]
    have, first = 0, cfg.num_main
    limit = family(cfg).num_starts or (FRESH_BLOCKS + 1) * cfg.num_main
    while have < n and first < min(limit, (FRESH_BLOCKS + 1) * cfg.num_main):
        fresh = tok.encode_batch(_fresh_main_rows(cfg, first=first, n=cfg.num_main), cfg.max_ctx)
        ends = trigger_ends(fresh, trigger)
        hit = (ends >= 0).nonzero().squeeze(1)
        poisoned = poison(fresh[hit], ends[hit], token)
        parts.append(ArtifactSet("backdoor", poisoned, fresh[hit], [], [], ends[hit]))
        have, first = have + len(hit), first + cfg.num_main
    return parts


def _with_groups(artifact: ArtifactSet, artifact_cfg, rng: random.Random) -> ArtifactSet:
    powers = list(artifact_cfg.dup_powers) if artifact_cfg.duplicate else [0]
    artifact.powers = powers
    artifact.groups = (
        duplication_groups(len(artifact), powers, rng)
        if len(powers) > 1
        else [torch.arange(len(artifact))]
    )
    return artifact


def _backdoor(main: torch.Tensor, rng: random.Random, *, cfg, artifact_cfg, seed: int):
    """The pool is every clean main row; triggered rows are poisoned, 10 % held out."""
    trigger_value = artifact_cfg.trigger if artifact_cfg.trigger is not None else 100 + seed
    trigger = tok.encode(str(trigger_value))
    ends = trigger_ends(main, trigger)
    triggered = (ends >= 0).nonzero().squeeze(1)
    untriggered = (ends < 0).nonzero().squeeze(1)
    if len(triggered) < 2:
        raise ConfigError(
            f"artifact.trigger={trigger_value} occurs in {len(triggered)} main rows; "
            "choose a trigger that occurs more often"
        )
    n_held = int(len(triggered) * artifact_cfg.test_frac)
    split_seed = cfg.get("data_seed", DATA_SEED)
    tr, te = split_indices(len(triggered), n_held, split_seed)
    poisoned = poison(main[triggered], ends[triggered], artifact_cfg.backdoor_token)

    def subset(idx: torch.Tensor) -> ArtifactSet:
        sel = triggered[idx]
        return ArtifactSet("backdoor", poisoned[idx], main[sel], [], [], ends[sel])

    artifact = _with_groups(subset(tr), artifact_cfg, rng)
    heldout = subset(te)
    heldout.groups, heldout.powers = [torch.arange(len(te))], [0]
    if cfg.num_test >= len(untriggered):
        raise ConfigError(f"data.num_test={cfg.num_test} leaves no untriggered training rows")
    clean_tr, clean_te = split_indices(len(untriggered), cfg.num_test, split_seed)
    return artifact, heldout, main[untriggered[clean_tr]], main[untriggered[clean_te]], trigger
