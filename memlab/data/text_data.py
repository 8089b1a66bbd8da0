"""Language TinyMem data: text → token stream → blocks → noise / backdoor / duplication.

The text of ``data.corpus`` is tokenized line by line and concatenated into one stream per split,
cut into consecutive ``max_ctx``-token blocks (the last one padded with the pad id, no BOS/EOS per
block). The token streams are cached on their own, keyed by the corpus, its file fingerprint and
the tokenizer — tokenizing wikitext-103 takes minutes and is done once, whatever the seed, artifact
or block length. The result is the same :class:`LMData` contract as the math data.

- **noise**: the first ``artifact.num_noise`` train blocks (stream order) get every id
  shifted by 0/−1/+1 (0.9/0.05/0.05); the other blocks are the clean training set; the test set is
  the whole test split.
- **backdoor**: the pool is every train + test block (deviations.md D06); rows containing the
  trigger token have every position after its first occurrence replaced by ``backdoor_token`` (2);
  ``test_frac`` of them are held out (the attack success rate is measured there, from the
  position after the trigger); ``num_test`` untriggered rows form the clean test set ``pool``.
- **non-members** (membership audits): noise — the first ``num_noise`` test-split blocks, noised
  the same way; backdoor — the held-out triggered rows (plus, with ``backdoor_pool: train``, the
  test split's triggered blocks), fewer than the artifact rows when the corpus holds no more;
  rows equal to a training row are never non-members.
- **duplication** (deviations.md D07): with ``artifact.duplicate``, artifact group g is repeated
  10**``dup_powers[g]`` times (the paper's language runs: noise [0,1,2,3], backdoor [2]).

Differences from the reference (docs/deviations.md):
- noise stays inside the vocabulary and never creates or moves a special token (deviations.md D04,
  :mod:`memlab.data.token_artifacts`; ``data.noise_boundary: wrap`` wraps modulo V instead);
- the random trigger is drawn among tokens that occur in ≥ ``data.trigger_min_rows`` pool rows
  (``0`` = the reference's ``randrange(V)``, which can pick a token that never occurs);
- backdoor runs are also evaluated on the official test split (test set ``test``, deviations.md D06); with the
  reference pool some of its blocks are training data, ``data.backdoor_pool: train`` keeps the
  official test split out of training entirely;
- EOS/pad are the tokenizer's real ids (GPT-2: 50256 for both, deviations.md D08), not math's 11/13.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from memlab.data.artifacts import (
    grouped,
    nonmember_rng,
    poison,
    trigger_ends,
)
from memlab.data.lm_data import (
    DATA_SEED,
    ArtifactSet,
    LMData,
    assemble_training,
    cache_path,
    nonmember_set,
    read_cache,
    split_indices,
)
from memlab.data.text_sources import fingerprint, text_splits
from memlab.data.text_tokenizer import (
    TRAIN_BPE,
    cached_bpe,
    load_pretrained,
    special_ids,
    tokenize_stream,
)
from memlab.data.token_artifacts import first_after, noised_ids, random_trigger
from memlab.errors import ConfigError

log = logging.getLogger(__name__)
POOLS = ("train_test", "train")


@dataclass
class TokenStreams:
    """The tokenized train and test text (int32) and the tokenizer's ids: the tokenization cache."""

    train: torch.Tensor
    test: torch.Tensor
    vocab_size: int
    eos_id: int
    pad_id: int
    bos_id: int
    tokenizer: str  # what tokenized the text (a name, a directory, or the trained BPE's directory)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(str(path) + ".tmp")
        torch.save(asdict(self), tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> TokenStreams:
        return cls(**torch.load(path, weights_only=True))


def stream_key(cfg) -> dict:
    """Everything that changes the token streams — and nothing else (not the seed, the artifact,
    the block length)."""
    return {
        "corpus": OmegaConf.to_container(cfg.corpus, resolve=True),
        "inputs": fingerprint(cfg.corpus),
        "tokenizer": cfg.tokenizer,
        "fallback": bool(cfg.tokenizer_fallback),
        "bpe_vocab_size": cfg.bpe_vocab_size,
    }


def _tokenizer(cfg, train_split, cache_dir: Path | None):
    """The tokenizer ``data.tokenizer`` names, a trained BPE, or — offline, with the fallback on —
    a trained BPE instead of the named one (the log says so)."""
    key = {k: v for k, v in stream_key(cfg).items() if k not in ("tokenizer", "fallback")}
    bpe_dir = cache_path(cache_dir, "bpe", key).with_suffix("") if cache_dir else None
    if cfg.tokenizer != TRAIN_BPE:
        try:
            return load_pretrained(cfg.tokenizer), str(cfg.tokenizer)
        except ConfigError:
            if not cfg.tokenizer_fallback:
                raise
            log.warning(
                "tokenizer '%s' is not available offline: using a byte-level BPE "
                "(vocab %d) trained on the corpus instead (data.tokenizer_fallback=true)",
                cfg.tokenizer,
                cfg.bpe_vocab_size,
            )
    else:
        log.info("using a byte-level BPE (vocab %d) trained on the corpus", cfg.bpe_vocab_size)
    tokenizer = cached_bpe(
        bpe_dir,
        train_split.batches(),
        vocab_size=cfg.bpe_vocab_size,
        num_lines=train_split.num_lines,
    )
    return tokenizer, str(bpe_dir) if bpe_dir else f"{TRAIN_BPE}:{cfg.bpe_vocab_size}"


def _empty(split: str) -> ConfigError:
    return ConfigError(
        f"data.corpus: the {split} text is empty (0 tokens); give it some text "
        "(data.corpus.train / data.corpus.test, or corpus.test_fraction > 0)"
    )


def tokenize_corpus(cfg, cache_dir: Path | None) -> TokenStreams:
    splits = text_splits(cfg.corpus)
    for split, part in splits.items():
        if part.num_lines == 0:
            raise _empty(split)
    tokenizer, name = _tokenizer(cfg, splits["train"], cache_dir)
    ids = special_ids(tokenizer)
    streams = {
        split: tokenize_stream(tokenizer, part.batches(), num_lines=part.num_lines, desc=split)
        for split, part in splits.items()
    }
    for split, stream in streams.items():
        if stream.numel() == 0:
            raise _empty(split)
    log.info(
        "tokenized with %s: %d train and %d test tokens (vocab %d)",
        name,
        streams["train"].numel(),
        streams["test"].numel(),
        ids.vocab_size,
    )
    return TokenStreams(streams["train"], streams["test"], **vars(ids), tokenizer=name)


def token_streams(cfg) -> TokenStreams:
    """The corpus's token streams, from the cache when this corpus + tokenizer was seen before."""
    cache_dir = Path(cfg.cache_dir) if cfg.get("cache_dir") else None
    if cache_dir is None:
        return tokenize_corpus(cfg, None)
    path = cache_path(cache_dir, "tokens", stream_key(cfg))
    streams = read_cache(path, TokenStreams.load)
    if streams is not None:
        return streams
    streams = tokenize_corpus(cfg, cache_dir)
    streams.save(path)
    log.info("tokens cached at %s", path)
    return streams


def to_blocks(stream: torch.Tensor, max_ctx: int, pad_id: int) -> torch.Tensor:
    """Consecutive non-overlapping ``max_ctx`` blocks; the last one right-padded."""
    n = -(-stream.numel() // max_ctx)
    out = torch.full((n * max_ctx,), pad_id, dtype=torch.long)
    out[: stream.numel()] = stream.long()
    return out.view(n, max_ctx)


def _noised_blocks(blocks, rng, *, cfg, artifact_cfg, streams: TokenStreams) -> torch.Tensor:
    return noised_ids(
        blocks,
        rng,
        list(artifact_cfg.noise_probs),
        vocab_size=streams.vocab_size,
        special_ids=sorted({streams.eos_id, streams.pad_id, streams.bos_id}),
        boundary=cfg.noise_boundary,
    )


def _noise(train: torch.Tensor, rng: random.Random, *, cfg, artifact_cfg, streams: TokenStreams):
    n = artifact_cfg.num_noise
    if not 0 < n < train.shape[0]:
        raise ConfigError(
            f"artifact.num_noise={n} must lie in [1, {train.shape[0] - 1}] "
            f"(the corpus has {train.shape[0]} train blocks of data.max_ctx={cfg.max_ctx} tokens)"
        )
    noised = _noised_blocks(train[:n], rng, cfg=cfg, artifact_cfg=artifact_cfg, streams=streams)
    artifact = grouped(ArtifactSet("noise", noised, train[:n], [], []), _powers(artifact_cfg), rng)
    return artifact, train[n:]


def _powers(artifact_cfg) -> list[int]:
    return list(artifact_cfg.dup_powers) if artifact_cfg.duplicate else [0]


def _trigger(pool: torch.Tensor, rng, *, cfg, artifact_cfg, streams: TokenStreams) -> list[int]:
    if artifact_cfg.trigger is not None:
        token = int(artifact_cfg.trigger)
        if not 0 <= token < streams.vocab_size:
            raise ConfigError(
                f"artifact.trigger={token} must be a token id in [0, {streams.vocab_size})"
            )
        return [token]
    excluded = sorted(
        {streams.eos_id, streams.pad_id, streams.bos_id, int(artifact_cfg.backdoor_token)}
    )
    token = random_trigger(
        pool, rng, vocab_size=streams.vocab_size, excluded=excluded, min_rows=cfg.trigger_min_rows
    )
    return [token]


def _backdoor(train, test, rng, *, cfg, artifact_cfg, streams: TokenStreams):
    """Poison triggered pool rows after the trigger, hold out ``test_frac``."""
    if cfg.backdoor_pool not in POOLS:
        raise ConfigError(f"data.backdoor_pool='{cfg.backdoor_pool}'; known: {', '.join(POOLS)}")
    if not 0 <= artifact_cfg.backdoor_token < streams.vocab_size:
        raise ConfigError(f"artifact.backdoor_token must be a token id < {streams.vocab_size}")
    pool = torch.cat([train, test]) if cfg.backdoor_pool == "train_test" else train
    trigger = _trigger(pool, rng, cfg=cfg, artifact_cfg=artifact_cfg, streams=streams)
    ends = first_after(pool, trigger[0]) if len(trigger) == 1 else trigger_ends(pool, trigger)
    triggered = (ends >= 0).nonzero().squeeze(1)
    untriggered = (ends < 0).nonzero().squeeze(1)
    if len(triggered) < 2 or cfg.num_test >= len(untriggered):
        raise ConfigError(
            f"trigger {trigger} occurs in {len(triggered)} of {len(pool)} blocks: need ≥ 2 "
            f"triggered and more than data.num_test={cfg.num_test} untriggered blocks"
        )
    split_seed = cfg.get("data_seed", DATA_SEED)
    tr, te = split_indices(len(triggered), int(len(triggered) * artifact_cfg.test_frac), split_seed)
    poisoned = poison(pool[triggered], ends[triggered], artifact_cfg.backdoor_token)

    def subset(idx: torch.Tensor) -> ArtifactSet:
        rows = triggered[idx]
        return ArtifactSet("backdoor", poisoned[idx], pool[rows], [], [], ends[rows])

    artifact = grouped(subset(tr), _powers(artifact_cfg), rng)
    heldout = grouped(subset(te), [0], rng)
    clean_tr, clean_te = split_indices(len(untriggered), cfg.num_test, split_seed)
    tests = {"pool": pool[untriggered[clean_te]], "test": test}
    return artifact, heldout, pool[untriggered[clean_tr]], tests, trigger


def _noise_nonmembers(test, seed: int, *, cfg, artifact_cfg, streams: TokenStreams) -> list:
    """The first ``num_noise`` test-split blocks (stream order, as the artifact takes the first
    train blocks), noised like the artifact; the test split is never trained on in noise runs."""
    clean = test[: artifact_cfg.num_noise]
    noised = _noised_blocks(
        clean, nonmember_rng(seed), cfg=cfg, artifact_cfg=artifact_cfg, streams=streams
    )
    return [ArtifactSet("noise", noised, clean, [], [])]


def _backdoor_nonmembers(heldout: ArtifactSet, test, *, cfg, artifact_cfg, trigger) -> list:
    """Poisoned triggered blocks never trained on: the held-out triggered rows, then (with
    ``data.backdoor_pool: train``) the test split's triggered blocks, poisoned the same way."""
    parts = [heldout]
    if cfg.backdoor_pool == "train":
        ends = first_after(test, trigger[0]) if len(trigger) == 1 else trigger_ends(test, trigger)
        hit = (ends >= 0).nonzero().squeeze(1)
        poisoned = poison(test[hit], ends[hit], artifact_cfg.backdoor_token)
        parts.append(ArtifactSet("backdoor", poisoned, test[hit], [], [], ends[hit]))
    return parts


def build_text_data(cfg, artifact_cfg, seed: int) -> LMData:
    """Language TinyMem data for ``cfg`` (the ``data`` group), ``artifact_cfg`` and the run seed
    (noise draws, trigger, duplication shuffle — one local ``random.Random(seed)``)."""
    streams = token_streams(cfg)
    train = to_blocks(streams.train, cfg.max_ctx, streams.pad_id)
    test = to_blocks(streams.test, cfg.max_ctx, streams.pad_id)
    rng = random.Random(seed)
    heldout, trigger, tests, nonmembers = None, None, {"test": test}, None
    if artifact_cfg.kind == "noise":
        settings = {"cfg": cfg, "artifact_cfg": artifact_cfg, "streams": streams}
        artifact, clean = _noise(train, rng, **settings)
        nonmembers = _noise_nonmembers(test, seed, **settings)
    elif artifact_cfg.kind == "backdoor":
        artifact, heldout, clean, tests, trigger = _backdoor(
            train, test, rng, cfg=cfg, artifact_cfg=artifact_cfg, streams=streams
        )
        nonmembers = _backdoor_nonmembers(
            heldout, test, cfg=cfg, artifact_cfg=artifact_cfg, trigger=trigger
        )
    elif artifact_cfg.kind == "none":
        artifact, clean = None, train
    else:
        raise ConfigError(
            f"unknown artifact.kind '{artifact_cfg.kind}'; known: backdoor, noise, none"
        )
    parts = assemble_training(artifact, [(0, clean)])
    if nonmembers is not None:
        nonmembers = nonmember_set(nonmembers, len(artifact), train=parts["train"])
    return LMData(
        **parts,
        dist_names=[cfg.name],
        test=tests,
        artifact=artifact,
        heldout=heldout,
        nonmembers=nonmembers,
        trigger=trigger,
        vocab_size=streams.vocab_size,
        pad_id=streams.pad_id,
        eos_id=streams.eos_id,
        bos_id=streams.bos_id,
        info={"family": cfg.name, "seed": seed, "tokenizer": streams.tokenizer},
    )
