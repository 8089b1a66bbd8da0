"""``python -m memlab.mine``: find the k-extractable sequences of a causal LM (build forget sets).

A row is k-extractable (Carlini et al. 2021; the paper's / MemPi's definition, unlearning spec §10.2,
§10.4) when greedy decoding from its first ``prompt_len`` tokens reproduces the next ``k`` tokens
exactly. The check is the teacher-forced one of :func:`memlab.metrics.memorization.greedy_match`
(one forward pass per batch, identical verdicts to ``generate()``). The output is the
memorized-sequence file format (:mod:`memlab.data.pythia_data`): a LongTensor [n_found, seq_len],
plus ``<out>.json`` with the source row indices. Progress is saved every ``save_every`` batches to
``<out>.partial.pt``; re-running the same command resumes from there.

Examples::

    python -m memlab.mine model=pythia_2.8b source.tokens=pile_rows.pt out=mem_2.8b.pt
    python -m memlab.mine model=hf model.path=/models/mine source.dataset=/data/ds source.column=input_ids
    python -m memlab.mine ckpt=outputs/runs/train/<time>/checkpoints/last.ckpt source.tokens=rows.pt
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from memlab.data.pythia_data import read_tokens, write_tokens
from memlab.errors import ConfigError
from memlab.metrics.memorization import greedy_match
from memlab.runs import config_hash, entry_point

log = logging.getLogger(__name__)


def mine_extractable(
    model: nn.Module,
    tokens: torch.Tensor,
    prompt_len: int,
    k: int,
    suppress_ids: list[int] | tuple[int, ...] = (),
    batch_size: int = 64,
    partial: Path | None = None,
    fingerprint: str = "",
    save_every: int = 50,
    progress: bool = True,
) -> torch.Tensor:
    """Indices of the rows of ``tokens`` whose ``k`` tokens after ``prompt_len`` the model
    reproduces greedily, resuming from / saving to ``partial`` (keyed by ``fingerprint``)."""
    start, found = load_partial(partial, fingerprint)
    n = tokens.shape[0]
    batches = range(start, n, batch_size)
    bar = tqdm(batches, desc="mining", unit="batch", disable=not progress)
    for i, lo in enumerate(bar):
        rows = tokens[lo : lo + batch_size]
        hit = greedy_match(model, rows, prompt_len, k, suppress_ids, batch_size)
        found.append(hit.nonzero().squeeze(1) + lo)
        done = min(lo + batch_size, n)
        bar.set_postfix(found=sum(len(f) for f in found))
        if partial is not None and (i + 1) % save_every == 0 and done < n:
            save_partial(partial, fingerprint, done, found)
    return torch.cat(found) if found else torch.zeros(0, dtype=torch.long)


def load_partial(partial: Path | None, fingerprint: str) -> tuple[int, list[torch.Tensor]]:
    """(next row, indices found so far) from a matching partial file, else a fresh start."""
    if partial is None or not partial.is_file():
        return 0, []
    state = torch.load(partial, weights_only=True)
    if state["fingerprint"] != fingerprint:
        log.warning("ignoring %s: it belongs to another mining run", partial)
        return 0, []
    log.info("resuming from %s at row %d", partial, state["next"])
    return int(state["next"]), [state["found"]]


def save_partial(partial: Path, fingerprint: str, next_row: int, found: list[torch.Tensor]) -> None:
    partial.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial.with_name(partial.name + ".tmp")
    indices = torch.cat(found) if found else torch.zeros(0, dtype=torch.long)
    torch.save({"fingerprint": fingerprint, "next": next_row, "found": indices}, tmp)
    tmp.replace(partial)


def source_tokens(source: DictConfig, seq_len: int, model_source: str | None) -> torch.Tensor:
    """[N, seq_len] rows from a token file or an HF dataset (token-id or text column); rows are
    cut to their first ``seq_len`` tokens and shorter ones dropped."""
    if bool(source.get("tokens")) == bool(source.get("dataset")):
        raise ConfigError("set exactly one of source.tokens (a token file) or source.dataset")
    if source.get("tokens"):
        tokens = read_tokens(source.tokens)
        tokens = tokens[:, :seq_len] if tokens.shape[1] >= seq_len else tokens[:0]
    else:
        rows = [r[:seq_len] for r in dataset_rows(source, model_source) if len(r) >= seq_len]
        tokens = torch.tensor(rows, dtype=torch.long) if rows else torch.zeros(0, seq_len)
    if source.get("max_rows"):
        tokens = tokens[: int(source.max_rows)]
    if not len(tokens):
        raise ConfigError(f"the source holds no row with at least seq_len={seq_len} tokens")
    return tokens.long()


def dataset_rows(source: DictConfig, model_source: str | None) -> list:
    """Token-id lists of an HF dataset: a saved directory (``save_to_disk``) or a hub name."""
    import datasets

    path = Path(str(source.dataset))
    if path.is_dir():  # written by Dataset.save_to_disk
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[source.split]
    else:
        ds = datasets.load_dataset(str(source.dataset), split=source.split)
    if source.get("text_column"):
        if model_source is None:
            raise ConfigError(
                "a text column needs a tokenizer: mine a pretrained model (model.path/repo)"
            )
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_source)
        return [tok(t)["input_ids"] for t in ds[source.text_column]]
    if source.column not in ds.column_names:
        raise ConfigError(f"source.column={source.column} not in the dataset ({ds.column_names})")
    return ds[source.column]


def load_miner_model(cfg: DictConfig) -> tuple[nn.Module, str | None]:
    """The model to mine: a memlab checkpoint (``ckpt``) or a pretrained one (``model``)."""
    if cfg.get("ckpt"):
        from memlab.data.build import load_data
        from memlab.models.build import load_trained_model, read_checkpoint

        run_cfg = OmegaConf.create(read_checkpoint(cfg.ckpt)["memlab_config"])
        model, _ = load_trained_model(cfg.ckpt, load_data(run_cfg))
        return model, None
    from memlab.models.hf import load_hf_causal_lm, model_source

    return load_hf_causal_lm(cfg.model), model_source(cfg.model)[0]


def run(cfg: DictConfig) -> dict[str, float]:
    """Mine, write the memorized-sequence file and its ``.json`` sidecar; returns counts."""
    prompt_len, k, seq_len = int(cfg.eval.prompt_len), int(cfg.eval.k), int(cfg.seq_len)
    if prompt_len < 1 or prompt_len + k > seq_len:
        raise ConfigError(f"eval.prompt_len={prompt_len} + eval.k={k} must be ≤ seq_len={seq_len}")
    model, hf_source = load_miner_model(cfg)
    device = cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    tokens = source_tokens(cfg.source, seq_len, hf_source)
    eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    suppress = [eos] if cfg.eval.suppress_eos and eos is not None else []
    out = Path(cfg.out)
    fingerprint = config_hash(
        {
            "source": cfg.source,
            "model": cfg.get("ckpt") or cfg.model,
            "k": k,
            "p": prompt_len,
            "seq_len": seq_len,
            "suppress": suppress,
            "n": tokens.shape[0],
        }
    )
    partial = out.with_name(out.name + ".partial.pt")
    found = mine_extractable(
        model,
        tokens,
        prompt_len,
        k,
        suppress,
        int(cfg.batch_size),
        partial,
        fingerprint,
        int(cfg.save_every),
        bool(cfg.progress),
    )
    write_tokens(tokens[found], out)
    meta = {
        "indices": found.tolist(),
        "n_scanned": int(tokens.shape[0]),
        "prompt_len": prompt_len,
        "k": k,
        "seq_len": seq_len,
        "model": str(cfg.get("ckpt") or hf_source),
    }
    out.with_suffix(".json").write_text(json.dumps(meta))
    partial.unlink(missing_ok=True)
    log.info("%d of %d rows are %d-extractable → %s", len(found), tokens.shape[0], k, out)
    return {
        "mine/n_found": float(len(found)),
        "mine/n_scanned": float(tokens.shape[0]),
        "mine/perc": 100.0 * len(found) / tokens.shape[0],
    }


main = entry_point("mine", run)


if __name__ == "__main__":
    main()
