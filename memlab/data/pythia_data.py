"""Naturally memorized sequences of a pretrained LM (Pythia + MemPi files) as the data contract.

File formats, read and written by :func:`read_tokens` / :func:`write_tokens`:

- **memorized file**: a LongTensor [N, 80] saved with ``torch.save`` (``.pt``; ``.npy`` also read) —
  each row a 32-token prompt followed by its continuation; a row counts as memorized when greedy
  decoding reproduces the next ``k`` = 40 tokens exactly. This is the layout of MemPi's
  ``pile_bs0-100-dedup.pt`` and of what ``python -m memlab.mine`` writes.
- **perplexity / retain file**: random pretraining sequences, [M, L] with any L; the tokens are
  flattened and re-cut into rows of the memorized file's length (MemPi's ``pile_random_batch.pt``
  [2048, 128] → [3264, 80], as the reference does). The first ``ppl_fraction`` of the rows form the
  perplexity set, the rest the retain set (reference: 1632 / 1632).

The result is a :class:`~memlab.data.lm_data.LMData`: ``artifact`` = ``ArtifactSet(kind="natural")``
over all memorized-file rows (every row scored; % memorized over the whole file, deviations.md D53),
``test = {"pile": perplexity rows}``, ``train`` = retain rows (so ``clean_train()`` is the retain
set). Vocabulary and EOS/pad ids come from the model (:func:`memlab.models.hf.adopt_model_vocab`);
until a model is attached they default to the config's values (GPT-NeoX: EOS = pad = 0).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from memlab.data.lm_data import ArtifactSet, LMData
from memlab.errors import ConfigError


def read_tokens(path: str | Path) -> torch.Tensor:
    """A 2-D LongTensor of token ids from a ``.pt`` (tensor, or dict with ``tokens``) or ``.npy`` file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"token file {path} does not exist")
    try:
        if path.suffix == ".npy":
            tokens = torch.from_numpy(np.load(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            tokens = obj.get("tokens") if isinstance(obj, dict) else obj
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise ConfigError(
            f"token file {path}: cannot be read, truncated or not a token file "
            f"({type(err).__name__})"
        ) from None
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
        raise ConfigError(f"token file {path} must hold a 2-D token tensor [rows, length]")
    return tokens.long()


def write_tokens(tokens: torch.Tensor, path: str | Path) -> Path:
    """Save a [N, L] LongTensor in the memorized-file format (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(tokens.long().contiguous().clone(), tmp)
    tmp.replace(path)
    return path


def recut(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Flatten ``tokens`` and cut them into as many full rows of ``length`` as fit."""
    flat = tokens.reshape(-1)
    n = flat.numel() // length
    return flat[: n * length].reshape(n, length)


def split_ppl_retain(rows: torch.Tensor, ppl_fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """First ``ppl_fraction`` of the rows → perplexity set, the rest → retain set."""
    if not 0.0 < ppl_fraction <= 1.0:
        raise ConfigError(f"data.ppl_fraction={ppl_fraction} must be in (0, 1]")
    n_ppl = max(1, int(rows.shape[0] * ppl_fraction))
    return rows[:n_ppl], rows[n_ppl:]


def build_pythia_data(data_cfg, artifact_cfg=None, seed: int = 0) -> LMData:
    """The :class:`LMData` of a memorized-sequence file and a perplexity/retain file."""
    if not data_cfg.get("memorized_file"):
        raise ConfigError("data.memorized_file is not set (a [N, 80] token file; see memlab.mine)")
    seqs = read_tokens(data_cfg.memorized_file)
    if data_cfg.get("max_rows"):
        seqs = seqs[: int(data_cfg.max_rows)]
    length, prompt = seqs.shape[1], int(data_cfg.prompt_len)
    if not 1 <= prompt < length:
        raise ConfigError(f"data.prompt_len={prompt} must lie in [1, {length}) (the row length)")
    if data_cfg.get("ppl_file"):
        other = recut(read_tokens(data_cfg.ppl_file), length)
    else:  # no perplexity file: utility is unmeasured and the retain set is empty
        other = seqs.new_zeros((0, length))
    ppl, retain = (
        split_ppl_retain(other, float(data_cfg.ppl_fraction)) if len(other) else (other, other)
    )
    n, r = seqs.shape[0], retain.shape[0]
    biggest = max(int(t.max()) for t in (seqs, other) if t.numel())
    vocab = int(data_cfg.get("vocab_size") or biggest + 1)
    artifact = ArtifactSet(
        "natural", seqs, seqs, [torch.arange(n)], [0], torch.full((n,), prompt, dtype=torch.long)
    )
    return LMData(
        train=retain,
        train_dist=torch.zeros(r, dtype=torch.long),
        train_twin=torch.full((r,), -1, dtype=torch.long),
        train_group=torch.full((r,), -1, dtype=torch.long),
        dist_names=["pile"],
        test={"pile": ppl} if len(ppl) else {},
        artifact=artifact,
        vocab_size=vocab,
        pad_id=int(data_cfg.pad_id),
        eos_id=int(data_cfg.eos_id),
        bos_id=int(data_cfg.eos_id),
        info={"memorized_file": str(data_cfg.memorized_file), "n_memorized_file": n},
    )
