"""Fine-tuning mitigations: continue training a memorizing model on clean data (the paper, §4.2)."""

from memlab.finetune.runner import run  # noqa: F401  (the task: memlab.finetune:run)
