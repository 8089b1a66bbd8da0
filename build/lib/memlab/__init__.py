"""memlab: plant, measure and mitigate memorization in language models.

A clean re-implementation of the system of "Mitigating Memorization in Language Models"
(Sakarvadia et al., arXiv 2410.02159, ICLR 2025) on PyTorch Lightning + Hydra.
"""

__version__ = "0.1.0"
