"""Fine-tuning mitigations (spec §12): continue training a memorizing model on clean data.

Three recipes (``finetune=clean|extra|both``, precise names in :mod:`memlab.finetune.recipes`),
5 epochs at lr 1e-3 with the pre-training AdamW state inherited by default, evaluated every epoch
with the same metrics and outputs as training. Entry point: ``python -m memlab.finetune``.
"""

from __future__ import annotations


def run(cfg):  # the sweep's task entry point ("memlab.finetune:run"); imports stay lazy
    """See :func:`memlab.finetune.runner.run`."""
    from memlab.finetune.runner import run as run_finetune

    return run_finetune(cfg)
