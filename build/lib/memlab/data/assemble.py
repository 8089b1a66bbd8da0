"""Build the training tensor and its per-row metadata from an artifact set and clean blocks.

Shared by every data family (math and language), so duplication and metadata are defined once.
"""

from __future__ import annotations

import torch

from memlab.data.artifacts import repeat_groups
from memlab.data.bundle import ArtifactSet


def assemble_training(
    artifact: ArtifactSet | None,
    clean_blocks: list[tuple[int, torch.Tensor]],
    artifact_dist: int = 0,
) -> dict[str, torch.Tensor]:
    """Concatenate (artifact rows repeated per duplication group, clean blocks) with metadata.

    ``clean_blocks`` holds (distribution index, rows) pairs. The artifact block comes first, as in
    the reference (spec §3.5).
    """
    parts, dist, twin, group = [], [], [], []
    if artifact is not None and len(artifact):
        index, group_id = repeat_groups(artifact.groups, artifact.powers)
        parts.append(artifact.rows[index])
        dist.append(torch.full_like(index, artifact_dist))
        twin.append(index)
        group.append(group_id)
    for dist_id, rows in clean_blocks:
        n = rows.shape[0]
        parts.append(rows)
        dist.append(torch.full((n,), dist_id, dtype=torch.long))
        twin.append(torch.full((n,), -1, dtype=torch.long))
        group.append(torch.full((n,), -1, dtype=torch.long))
    return {
        "train": torch.cat(parts),
        "train_dist": torch.cat(dist),
        "train_twin": torch.cat(twin),
        "train_group": torch.cat(group),
    }
