"""Forget and retain sets on a constructed data bundle: the text default of 100,000 clean retain
rows, the reference's retain set (artifact rows once each), the clean distributions
(deviations.md D49, D51)."""

from __future__ import annotations

import pytest
import torch

from memlab.data.lm_data import ArtifactSet, LMData
from memlab.errors import ConfigError
from memlab.unlearn.sets import TEXT_RETAIN_ROWS, build_sets

N_CLEAN, N_ARTIFACT, COPIES = TEXT_RETAIN_ROWS + 7, 3, 10


def bundle() -> LMData:
    """Clean rows numbered 0 … N_CLEAN−1 (first token), then 3 artifact rows × 10 copies each."""
    clean = torch.arange(N_CLEAN)[:, None].repeat(1, 4)
    artifact = -torch.arange(1, N_ARTIFACT + 1)[:, None].repeat(1, 4)
    twin = torch.arange(N_ARTIFACT).repeat_interleave(COPIES)
    train = torch.cat([artifact[twin], clean])
    dist = torch.cat([torch.zeros(len(twin)), torch.arange(N_CLEAN) % 2]).long()
    return LMData(
        train=train,
        train_dist=dist,
        train_twin=torch.cat([twin, -torch.ones(N_CLEAN, dtype=torch.long)]),
        train_group=torch.cat([torch.zeros(len(twin)), -torch.ones(N_CLEAN)]).long(),
        dist_names=["seven", "two"],
        test={},
        artifact=ArtifactSet("noise", artifact, artifact.abs(), [torch.arange(3)], [1]),
    )


def sets(data: LMData, forget_set: str = "artifact", **options):
    return build_sets(forget_set, model=None, data=data, eval_cfg=None, base=None, **options)


def test_text_data_retains_the_first_100000_clean_rows_and_math_all():
    data = bundle()
    text = sets(data, text=True).retain
    assert torch.equal(text[:, 0], torch.arange(TEXT_RETAIN_ROWS))
    assert len(sets(data).retain) == N_CLEAN  # math: every clean row
    sampled = sets(data, text=True, retain_size=50, seed=3).retain  # an explicit size subsamples
    assert len(sampled) == 50 and (sampled[:, 0] >= 0).all()


def test_reference_retain_set_adds_each_artifact_row_once():
    data = bundle()
    mem = sets(data, "seven", compat="reference", text=True).retain
    artifact_rows = mem[mem[:, 0] < 0]
    assert torch.equal(artifact_rows, data.artifact.rows)  # de-duplicated: 3 rows, not 30
    assert len(mem) == min(TEXT_RETAIN_ROWS, N_CLEAN // 2) + N_ARTIFACT
    assert (mem[mem[:, 0] >= 0, 0] % 2 == 1).all()  # the forgotten distribution "seven" is out
    forgetting_artifacts = sets(data, "artifact", compat="reference").retain
    assert (forgetting_artifacts[:, 0] >= 0).all()  # the artifact rows are the forget set here
    assert len(sets(data, "artifact").forget) == N_ARTIFACT


def test_unknown_compat_and_forget_set_are_one_line():
    with pytest.raises(
        ConfigError, match="unlearn.compat=exact: unknown; allowed: fixed, reference"
    ):
        sets(bundle(), compat="exact")
    with pytest.raises(
        ConfigError, match="forget_set=nine: unknown; allowed: mem, artifact, seven"
    ):
        sets(bundle(), "nine")
