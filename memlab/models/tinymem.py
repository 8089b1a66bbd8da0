"""The TinyMem model: HF ``GPT2LMHeadModel`` trained from scratch.

4 heads, width 128, ReLU, no dropout, init std 0.8/√n_embd, tied embeddings, no KV cache needed.
"""

from __future__ import annotations

import math

from transformers import GPT2Config, GPT2LMHeadModel
from transformers.utils import logging as hf_logging

from memlab.errors import ConfigError

hf_logging.set_verbosity_error()  # padding-mask advice does not apply: rows are right-padded


def tinymem_config(
    model_cfg, *, vocab_size: int, max_ctx: int, bos: int, eos: int, pad: int
) -> GPT2Config:
    """The GPT2Config of a TinyMem model for a vocabulary and context length."""
    if model_cfg.n_embd % model_cfg.n_head:
        raise ConfigError(
            f"model.n_embd={model_cfg.n_embd} must be divisible by model.n_head={model_cfg.n_head}"
        )
    if model_cfg.n_layer < 1:
        raise ConfigError(f"model.n_layer={model_cfg.n_layer} must be ≥ 1")
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=max_ctx,
        n_embd=model_cfg.n_embd,
        n_layer=model_cfg.n_layer,
        n_head=model_cfg.n_head,
        n_inner=model_cfg.get("n_inner"),
        activation_function=model_cfg.activation,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        initializer_range=model_cfg.init_scale / math.sqrt(model_cfg.n_embd),
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        use_cache=False,
        tie_word_embeddings=True,
    )


def build_tinymem(
    model_cfg, vocab_size: int, max_ctx: int, bos: int, eos: int, pad: int
) -> GPT2LMHeadModel:
    """A freshly initialised TinyMem model (initialisation draws from the global torch RNG, which
    the entry point seeds with the run seed)."""
    config = tinymem_config(
        model_cfg, vocab_size=vocab_size, max_ctx=max_ctx, bos=bos, eos=eos, pad=pad
    )
    return GPT2LMHeadModel(config)
