"""The teacher-forced memorization check equals real greedy ``generate()`` row by row."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from memlab.data.build import load_data
from memlab.metrics.evaluate import evaluate_model, memorization
from memlab.metrics.memorization import greedy_match, greedy_match_generate, scored_inputs
from memlab.metrics.utility import lm_utility, valid_targets
from memlab.models.build import load_trained_model


def generate_verdicts(model, artifact, eval_cfg, eos_id, pad_id, rows):
    n = rows.shape[0]
    start = artifact.start if artifact.start is not None else torch.full((n,), eval_cfg.prompt_len)
    return greedy_match_generate(
        model, rows, start, eval_cfg.k, eval_cfg.suppress_eos, pad_id, eos_id
    )


def assert_agrees(model, data, eval_cfg, artifact):
    result = memorization(model, artifact, eval_cfg, data.eos_id)
    n = len(artifact)
    start = artifact.start if artifact.start is not None else torch.full((n,), eval_cfg.prompt_len)
    noised = scored_inputs(artifact.rows, artifact.clean, start)
    gen_mem = generate_verdicts(model, artifact, eval_cfg, data.eos_id, data.pad_id, noised)
    gen_clean = generate_verdicts(
        model, artifact, eval_cfg, data.eos_id, data.pad_id, artifact.clean
    )
    assert torch.equal(result.memorized, gen_mem)
    assert torch.equal(result.clean_correct, gen_clean)
    return result


def test_teacher_forcing_equals_generate_for_noise(tiny_run):
    data = load_data(tiny_run.cfg)
    model, _ = load_trained_model(tiny_run.ckpt, data)
    result = assert_agrees(model, data, tiny_run.cfg.eval, data.artifact)
    # the trained model really memorizes: both verdicts occur among evaluable rows
    memorized = (result.memorized & result.evaluable).sum()
    assert memorized >= 5 and (result.evaluable & ~result.memorized).sum() >= 1
    assert tiny_run.metrics["mem/perc"] >= 30.0


def test_reference_style_generation_agrees(tiny_run):
    """The reference generated to the full context with min_length = max_length, no KV cache."""
    data = load_data(tiny_run.cfg)
    model, _ = load_trained_model(tiny_run.ckpt, data)
    art, ev = data.artifact, tiny_run.cfg.eval
    start = torch.full((len(art),), ev.prompt_len)
    noised = scored_inputs(art.rows, art.clean, start)
    fast = greedy_match(model, noised, start, ev.k, [data.eos_id])
    slow = greedy_match_generate(
        model, noised, start, ev.k, True, data.pad_id, data.eos_id, reference_style=True
    )
    assert torch.equal(fast, slow)


@pytest.fixture(scope="module")
def backdoor_run(tmp_path_factory):
    from memlab.train import run
    from tests.helpers.configs import TINY_OVERRIDES, compose_config

    tmp = tmp_path_factory.mktemp("backdoor")
    skip = ("trainer.max_epochs", "artifact.num_noise")
    overrides = [o for o in TINY_OVERRIDES if not o.startswith(skip)]
    cfg = compose_config(
        "train",
        [*overrides, "artifact=backdoor", "artifact.trigger=10", "trainer.max_epochs=15"],
        tmp,
    )
    metrics = run(cfg)
    return cfg, tmp / "run" / "checkpoints" / "last.ckpt", metrics


@pytest.mark.slow  # default-suite budget: covered faster elsewhere or by the slow tier
def test_teacher_forcing_equals_generate_for_backdoors(backdoor_run):
    cfg, ckpt, metrics = backdoor_run
    data = load_data(cfg)
    model, _ = load_trained_model(ckpt, data)
    assert data.heldout is not None and len(data.heldout) >= 5
    result = assert_agrees(model, data, cfg.eval, data.heldout)
    # deviations.md D16: every held-out triggered row is evaluated
    assert int(result.evaluable.sum()) == len(data.heldout)
    assert metrics["mem/n_eval"] == len(data.heldout)
    assert metrics["mem/perc"] > 0.0  # the backdoor already fires on some held-out rows


class Echo(nn.Module):
    """A 'model' whose greedy prediction is always the previous token + 1 (mod V)."""

    def __init__(self, vocab: int = 10) -> None:
        super().__init__()
        self.vocab = vocab
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids):
        return torch.nn.functional.one_hot((input_ids + 1) % self.vocab, self.vocab).float()


def test_greedy_match_windows_and_suppression():
    model = Echo()
    x = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 5, 6], [1, 2, 3, 4, 5, 6]])
    # row 1 breaks the pattern inside the window; a window past the row end is cut
    assert greedy_match(model, x, 2, 3).tolist() == [True, False, True]
    assert greedy_match(model, x, torch.tensor([4, 4, 5]), 10).tolist() == [True, False, True]
    # suppressing the token the model wants (4 at position 3) breaks every match covering it
    assert greedy_match(model, x, 2, 3, suppress_ids=[4]).tolist() == [False, False, False]


def test_utility_definitions_on_a_known_case():
    pad = 9
    rows = torch.tensor([[1, 2, 3, pad, pad, pad], [1, 2, 3, 4, 5, 6]])
    mask = valid_targets(rows, pad)
    assert mask.tolist() == [[True, True, False, False, False], [True] * 5]
    u = lm_utility(Echo(), rows, pad, batch_size=1)
    # Echo predicts 4 after 3, and 0 after pad: row 0's valid targets are all right
    assert u["acc"] == pytest.approx(1.0)
    # reference accuracy counts the padding targets: row 0 gets 2/5, row 1 gets 5/5
    assert u["acc_ref"] == pytest.approx((2 / 5 + 1.0) / 2)


def test_evaluate_model_metric_names(tiny_run):
    data = load_data(tiny_run.cfg)
    model, _ = load_trained_model(tiny_run.ckpt, data)
    metrics, _ = evaluate_model(model, data, tiny_run.cfg.eval)
    for name in ("mem/perc", "mem/perc_clean", "mem/n_eval", "util/acc_mean", "util/ppl/7"):
        assert name in metrics
    assert {f"util/acc/{d}" for d in "72345"} <= set(metrics)
    assert metrics["mem/perc"] == pytest.approx(tiny_run.metrics["mem/perc"])


def test_width_dependent_models_are_scored_like_uncached_generation():
    """Sequence-axis example-tied dropout (compat: reference) masks by input width, so teacher
    forcing at width prompt+k is not generation; the metric decodes such models (deviations.md D23)."""
    from memlab.metrics.memorization import greedy_match_by_width, greedy_match_generate
    from memlab.regularizers.build import attach_test_time
    from tests.test_regularizers import tiny_model

    model = tiny_model()
    regularizer = {
        "name": "example_tied_dropout",
        "p_fixed": 0.2,
        "p_mem": 0.1,
        "compat": "reference",
    }
    attach_test_time(model, {"seed": 0, "regularizer": regularizer})
    assert model.memlab_needs_generation
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, 10, (16, 10), generator=g)
    with torch.no_grad():
        gen = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                             max_new_tokens=8, min_new_tokens=8, use_cache=False,
                             pad_token_id=13, eos_token_id=11)  # fmt: skip
    rows = torch.cat([gen, torch.randint(0, 10, (16, 24 - gen.shape[1]), generator=g)], 1)
    start = torch.tensor([10] * 8 + [12] * 8)
    decoded = greedy_match_generate(model, rows, start, 6, True, 13, 11, reference_style=True)
    assert torch.equal(greedy_match_by_width(model, rows, start, 6, [11]), decoded)
