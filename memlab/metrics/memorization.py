"""Exact k-token greedy memorization, computed by teacher forcing (deviations.md D14).

A continuation x[s : s+k] is what greedy decoding produces from the prompt x[:s] iff at every
continuation position p the argmax of the logits at p−1 (with the target tokens before p as input)
equals x[p]. That is one forward pass instead of k decoding steps. The reference's logit rule —
EOS can never be generated (HF ``min_length = max_length``, deviations.md D15) — is applied before the argmax
when ``suppress_ids`` holds the EOS id. :func:`greedy_match_generate` is the slow ``generate()``
version used to verify this one (tests, ``bench/memorization_eval.py``).
"""

from __future__ import annotations

import torch
from torch import nn

from memlab.metrics.forward import eval_mode, logits_of, model_device
from memlab.metrics.shards import shards_for


def _starts(start: torch.Tensor | int, n: int) -> torch.Tensor:
    if isinstance(start, int):
        return torch.full((n,), start, dtype=torch.long)
    return start.to(torch.long)


def greedy_match(
    model: nn.Module,
    inputs: torch.Tensor,
    start: torch.Tensor | int,
    k: int,
    suppress_ids: list[int] | tuple[int, ...] = (),
    batch_size: int = 512,
) -> torch.Tensor:
    """For each row, whether greedy decoding from ``inputs[:start]`` reproduces
    ``inputs[start : start+k]`` exactly (the window is cut at the row end). Returns bool [B].
    Across ranks each scores its shard of the rows (:mod:`memlab.metrics.shards`)."""
    n, T = inputs.shape
    starts = _starts(start, n)
    if (starts < 1).any():
        raise ValueError("the prompt must hold at least one token (start >= 1)")
    device = model_device(model)
    shards = shards_for(model, n, batch_size)
    first = shards.rows.start
    out = torch.zeros(len(shards.rows), dtype=torch.bool)
    positions = torch.arange(T)
    with eval_mode(model):
        for lo in shards.batch_starts():
            s = starts[lo : lo + batch_size]
            ends = (s + k).clamp(max=T)
            width = int(ends.max())
            x = inputs[lo : lo + batch_size, :width].to(device)
            logits = logits_of(model, x)[:, :-1].float()
            if suppress_ids:
                logits[..., list(suppress_ids)] = float("-inf")
            hit = (logits.argmax(-1) == x[:, 1:]).cpu()
            pos = positions[1:width].unsqueeze(0)
            window = (pos >= s.unsqueeze(1)) & (pos < ends.unsqueeze(1))
            out[lo - first : lo - first + batch_size] = (hit | ~window).all(dim=1)
    return shards.gather_rows(out)


@torch.no_grad()
def greedy_match_generate(
    model: nn.Module,
    inputs: torch.Tensor,
    start: torch.Tensor | int,
    k: int,
    suppress_eos: bool,
    pad_id: int,
    eos_id: int,
    batch_size: int = 512,
    reference_style: bool = False,
) -> torch.Tensor:
    """The same verdicts through HF ``generate`` (greedy). ``reference_style`` mimics the reference:
    generate up to the full context with ``min_length = max_length`` and no KV cache (deviations.md D14)."""
    n, T = inputs.shape
    starts = _starts(start, n)
    device = model_device(model)
    out = torch.zeros(n, dtype=torch.bool)
    with eval_mode(model):
        for s in starts.unique().tolist():
            rows = (starts == s).nonzero().squeeze(1)
            new = min(k, T - s)
            for lo in range(0, len(rows), batch_size):
                idx = rows[lo : lo + batch_size]
                prompt = inputs[idx, :s].to(device)
                kwargs = dict(
                    do_sample=False, num_beams=1, pad_token_id=pad_id, eos_token_id=eos_id
                )
                if reference_style:
                    kwargs.update(
                        max_length=T, min_length=T if suppress_eos else 0, use_cache=False
                    )
                else:
                    kwargs.update(max_new_tokens=new, min_new_tokens=new if suppress_eos else 0)
                gen = model.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs).cpu()
                got = gen[:, s : s + new]
                want = inputs[idx, s : s + new]
                ok = torch.zeros(len(idx), dtype=torch.bool)
                if got.shape[1] == new:
                    ok = (got == want).all(dim=1)
                out[idx] = ok
    return out


def scored_inputs(rows: torch.Tensor, clean: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The clean prompt (the prompt is the clean prefix, as in the reference) followed by the artifact row."""
    pos = torch.arange(rows.shape[1]).unsqueeze(0)
    return torch.where(pos < start.unsqueeze(1), clean, rows)


def evaluable(
    rows: torch.Tensor, clean: torch.Tensor, *, start: torch.Tensor, k: int
) -> torch.Tensor:
    """Rows whose scored window differs from the clean twin (only those can show memorization)."""
    pos = torch.arange(rows.shape[1]).unsqueeze(0)
    window = (pos >= start.unsqueeze(1)) & (pos < (start + k).unsqueeze(1))
    return ((rows != clean) & window).any(dim=1)
