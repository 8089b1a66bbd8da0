"""Pretrained Hugging Face causal LMs (Pythia and friends): one loader, by hub name + revision or
by local directory, in the dtype the config asks for.

The reference loads Pythia to one GPU, reloads it with ``device_map="auto"`` and keeps a
``deepcopy`` as ``original_model`` (deviations.md D52), which triples the memory of a 6.9B model. Here a
model is loaded exactly once; what must be restorable is kept as a copy of the MLP weights only
(:class:`~memlab.models.edit.MLPSnapshot`) or re-created by re-applying an :class:`~memlab.models.edit.Edit`.
Model choice is by explicit name, never by a substring such as "2"/"6" of the name (deviations.md D52).

Listed in :data:`memlab.models.build.MODELS` as ``hf`` (any causal LM) and ``pythia`` (GPT-NeoX
checkpoints).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from memlab.data.lm_data import LMData
from memlab.errors import ConfigError
from memlab.runs import deepspeed_config_of

DTYPES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "32": torch.float32,
    "auto": "auto",
}

# transformers' ZeRO-3 aware loading looks this object up through a weak reference: it must stay
# alive while ``from_pretrained`` runs (transformers #10753).
_LIVE_DS_CONFIGS: list = []


def torch_dtype(name: str | None) -> torch.dtype | str:
    """The torch dtype named by ``model.dtype`` (fp16 | bf16 | fp32 | auto)."""
    key = "auto" if name is None else str(name).lower()
    if key not in DTYPES:
        raise ConfigError(f"model.dtype='{name}' is not one of fp16, bf16, fp32, auto")
    return DTYPES[key]


def model_source(model_cfg) -> tuple[str, str | None]:
    """Where the weights come from: ``(local directory, None)`` when ``model.path`` is set (the
    revision is then whatever was saved there), else ``(hub repo, revision)``."""
    path = model_cfg.get("path")
    if path:
        if not Path(path).is_dir():
            raise ConfigError(f"model.path={path} is not a directory holding a saved model")
        return str(path), None
    repo = model_cfg.get("repo")
    if not repo:
        raise ConfigError(
            "set model.repo (a hub name such as EleutherAI/pythia-160m-deduped) or model.path"
        )
    return str(repo), model_cfg.get("revision")


def load_hf_causal_lm(model_cfg, deepspeed_config: dict | None = None) -> nn.Module:
    """The pretrained model of ``model_cfg`` in eval mode, loaded once.

    ``deepspeed_config`` (a ZeRO stage-3 config) makes transformers partition the weights while
    loading — the path to use inside ``LightningModule.configure_model`` under stage 3, where a
    plain ``from_pretrained`` would see already-partitioned, empty parameters (Lightning #19259).
    """
    from transformers import AutoModelForCausalLM

    source, revision = model_source(model_cfg)
    if deepspeed_config and deepspeed_config.get("zero_optimization", {}).get("stage") == 3:
        from transformers.integrations import HfDeepSpeedConfig

        _LIVE_DS_CONFIGS.append(HfDeepSpeedConfig(deepspeed_config))
    kwargs = {"dtype": torch_dtype(model_cfg.get("dtype"))}
    if revision:
        kwargs["revision"] = str(revision)
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg.attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as err:  # missing offline cache, unknown revision, bad directory
        where = f"{source}@{revision}" if revision else source
        raise ConfigError(f"cannot load model {where}: {str(err).splitlines()[0]}") from err
    return model.eval()


def adopt_model_vocab(data: LMData, model: nn.Module) -> LMData:
    """Take vocabulary size and EOS/pad ids from the model's config (Pythia data files hold bare
    token ids; the model defines what they mean). Pad falls back to EOS, as in the reference."""
    config = model.config
    data.vocab_size = int(config.vocab_size)
    if config.eos_token_id is not None:
        data.eos_id = int(config.eos_token_id)
    pad = config.pad_token_id if config.pad_token_id is not None else data.eos_id
    data.pad_id = int(pad)
    return data


def check_token_range(data: LMData, model: nn.Module) -> None:
    """A data file tokenized for another vocabulary fails in one line instead of an index error."""
    vocab = int(model.config.vocab_size)
    biggest = max(int(t.max()) for t in [data.train, *data.test.values()] if t.numel())
    if data.artifact is not None and data.artifact.rows.numel():
        biggest = max(biggest, int(data.artifact.rows.max()))
    if biggest >= vocab:
        raise ConfigError(
            f"the data holds token id {biggest} but the model's vocabulary has {vocab} entries "
            "(was the file tokenized for another model?)"
        )


def build_pretrained(model_cfg: DictConfig, data: LMData) -> nn.Module:
    """The pretrained model of ``model_cfg``; ``data`` takes the model's vocabulary and ids."""
    model = load_hf_causal_lm(model_cfg)
    check_token_range(data, model)
    adopt_model_vocab(data, model)
    return model


def pretrained_factory(model_cfg, strategy=None) -> Callable[[], nn.Module]:
    """A zero-argument builder for ``LMModule(model=...)``: the model is then loaded inside
    ``configure_model`` — with transformers' ZeRO-3 aware loader when ``strategy`` is DeepSpeed
    stage 3 — instead of being materialised in full on every rank first."""
    return functools.partial(load_hf_causal_lm, model_cfg, deepspeed_config_of(strategy))
