"""Tokenizers for language TinyMem: GPT-2 BPE, any local tokenizer, or one trained here.

``data.tokenizer`` names a Hub tokenizer (``openai-community/gpt2``, the reference's) or a local
directory (``save_pretrained`` output); ``bpe`` trains a GPT-2-style byte-level BPE on the training
text. With ``data.tokenizer_fallback: true`` a tokenizer that cannot be loaded (offline, no cached
files) is replaced by such a BPE, and the run's log says so. Like GPT-2, the trained BPE has one
special token, ``<|endoftext|>``, as its last id, serving as EOS, BOS and pad (the reference sets
pad := eos); ids 0–255 are the bytes in GPT-2's order, so token 2 is ``#`` as in GPT-2.

Lines are tokenized one by one with no special tokens added and concatenated into one stream
(as the reference tokenizes wikitext): an empty line contributes nothing, a trailing newline is a token.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from memlab.errors import ConfigError

log = logging.getLogger(__name__)
EOT = "<|endoftext|>"
TRAIN_BPE = "bpe"


@dataclass
class SpecialIds:
    """The tokenizer's vocabulary size and the ids the model and metrics need (deviations.md D08)."""

    vocab_size: int
    eos_id: int
    pad_id: int
    bos_id: int


def special_ids(tokenizer) -> SpecialIds:
    """EOS, pad and BOS of ``tokenizer``; a missing pad or BOS falls back to EOS (GPT-2 has none)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        eos = tokenizer.pad_token_id
    if eos is None:
        raise ConfigError(
            f"data.tokenizer='{tokenizer.name_or_path}' has neither an EOS nor a pad token"
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    return SpecialIds(len(tokenizer), eos, pad, bos)


def load_pretrained(name: str):
    """``AutoTokenizer.from_pretrained(name)``; a failure becomes one line that says what to do."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"data.tokenizer='{name}' cannot be loaded ({type(err).__name__}; offline or not a "
            "tokenizer directory): point to a local tokenizer with data.tokenizer=/path/to/dir "
            "(a save_pretrained directory, e.g. GPT-2's tokenizer.json), or train one on the "
            f"corpus with data.tokenizer={TRAIN_BPE}"
        ) from None


def train_bpe(batches: Iterator[list[str]], vocab_size: int, num_lines: int | None = None):
    """A byte-level BPE of ``vocab_size`` ids (the last is ``<|endoftext|>``) trained on the text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 258:
        raise ConfigError(f"data.bpe_vocab_size={vocab_size} must be ≥ 258 (256 bytes + merges)")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(chain.from_iterable(batches), trainer, length=num_lines)
    bpe.add_special_tokens([EOT])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOT, bos_token=EOT, pad_token=EOT
    )


def cached_bpe(directory: Path | None, batches, *, vocab_size: int, num_lines: int | None):
    """Train a BPE once and keep it in ``directory`` (next to the data cache)."""
    from transformers import AutoTokenizer

    if directory is not None and (directory / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(str(directory))
    tokenizer = train_bpe(batches, vocab_size, num_lines)
    if directory is not None:
        tokenizer.save_pretrained(str(directory))
        log.info(
            "BPE tokenizer saved at %s (reuse it with data.tokenizer=%s)", directory, directory
        )
    return tokenizer


def tokenize_lines(tokenizer, lines: list[str]) -> np.ndarray:
    """Token ids of ``lines``, each tokenized on its own, concatenated (int32)."""
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    return np.fromiter(chain.from_iterable(ids), dtype=np.int32)


def tokenize_stream(
    tokenizer, batches: Iterator[list[str]], *, num_lines: int | None, desc: str
) -> torch.Tensor:
    """One int32 token stream of all lines, batch by batch, with a progress bar (wikitext-103
    takes minutes)."""
    parts = []
    with tqdm(total=num_lines, desc=f"tokenizing {desc}", unit="line", mininterval=5) as bar:
        for lines in batches:
            parts.append(tokenize_lines(tokenizer, lines))
            bar.update(len(lines))
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
    return torch.from_numpy(stream)
