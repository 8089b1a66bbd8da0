"""Former name of :mod:`memlab.data.lm_data`, kept until every import uses the new name."""

from memlab.data.lm_data import ArtifactSet, LMData

__all__ = ["ArtifactSet", "LMData"]
