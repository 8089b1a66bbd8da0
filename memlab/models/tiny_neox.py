"""A tiny randomly initialised GPT-NeoX (the Pythia architecture) for tests and CPU runs.

The production path unlearns Pythia (GPT-NeoX, ``nn.Linear`` MLP layout, partial rotary position
embeddings, parallel residual). Hub downloads are not available to tests, so
the project makes its own small GPT-NeoX, trains it on TinyMem data through the same
:class:`~memlab.training.lm_module.LMModule`, and runs every unlearning method on it.
"""

from __future__ import annotations

from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from memlab.data.lm_data import LMData
from memlab.errors import ConfigError


def tiny_neox_config(model_cfg, data: LMData) -> GPTNeoXConfig:
    """The GPTNeoXConfig for ``model_cfg`` (sizes) and ``data`` (vocabulary, context, token ids)."""
    if model_cfg.hidden % model_cfg.n_head:
        raise ConfigError(
            f"model.hidden={model_cfg.hidden} must be divisible by model.n_head={model_cfg.n_head}"
        )
    if model_cfg.n_layer < 1:
        raise ConfigError(f"model.n_layer={model_cfg.n_layer} must be ≥ 1")
    return GPTNeoXConfig(
        vocab_size=data.vocab_size,
        hidden_size=model_cfg.hidden,
        num_hidden_layers=model_cfg.n_layer,
        num_attention_heads=model_cfg.n_head,
        intermediate_size=model_cfg.inner,
        hidden_act=model_cfg.activation,
        max_position_embeddings=data.max_ctx,
        initializer_range=model_cfg.init_std,
        use_parallel_residual=model_cfg.parallel_residual,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": float(model_cfg.rope_theta),
            "partial_rotary_factor": float(model_cfg.rotary_pct),
        },
        bos_token_id=data.bos_id,
        eos_token_id=data.eos_id,
        pad_token_id=data.pad_id,
        use_cache=False,
        tie_word_embeddings=False,
    )


def build_tiny_neox(model_cfg, data: LMData) -> GPTNeoXForCausalLM:
    """A freshly initialised tiny GPT-NeoX (initialisation draws from the global torch RNG, which
    the entry point seeds with the run seed)."""
    return GPTNeoXForCausalLM(tiny_neox_config(model_cfg, data))
