"""Language TinyMem data on the offline corpus: blocks, id noise, backdoors, duplication, caches,
the wikitext and text-file paths, and one-line errors for bad input."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest
import torch

from memlab.data import text_tokenizer
from memlab.data.build import load_data
from memlab.data.text_corpus import synthetic_lines, zipf_weights
from memlab.data.text_data import build_text_data, to_blocks, token_streams
from memlab.data.token_artifacts import first_after, noised_ids
from memlab.errors import ConfigError
from tests.helpers.configs import compose_config

SMALL = [
    "data=synthetic_text",
    "data.tokenizer=bpe",
    "data.bpe_vocab_size=300",
    "data.corpus.num_docs=300",
    "data.corpus.test_docs=20",
    "data.max_ctx=32",
    "data.num_test=50",
    "results=false",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache directory per module: the BPE and the token streams are built once."""
    return tmp_path_factory.mktemp("text_cache")


def small_cfg(tmp: Path, cache_dir: Path | None, *overrides: str):
    cfg = compose_config("train", [*SMALL, *overrides], tmp)
    cfg.data.cache_dir = str(cache_dir) if cache_dir else None
    return cfg


@pytest.fixture(scope="module")
def small(tmp_path_factory, cache):
    """The small corpus's config and token streams."""
    cfg = small_cfg(tmp_path_factory.mktemp("small"), cache)
    return cfg, token_streams(cfg.data)


def count_tokenize_calls(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = text_tokenizer.tokenize_lines

    def counting(tokenizer, lines):
        calls.append(len(lines))
        return real(tokenizer, lines)

    monkeypatch.setattr(text_tokenizer, "tokenize_lines", counting)
    return calls


# --- the offline corpus -------------------------------------------------------------------------


def test_corpus_is_deterministic_zipfian_and_wikitext_shaped():
    lines = synthetic_lines(50, seed=0)
    assert lines == synthetic_lines(50, seed=0)
    assert lines != synthetic_lines(50, seed=1)
    assert sum(line.startswith(" = ") for line in lines) == 50  # one heading per document
    assert all(line.endswith("\n") for line in lines)
    counts = sorted((c for c in _word_counts(synthetic_lines(400, seed=0)).values()), reverse=True)
    assert len(counts) > 600  # an open vocabulary (generated proper names)
    assert counts[0] > 20 * counts[len(counts) // 2]  # heavy head, long tail
    assert zipf_weights(3) == [1.0, 1.0 / 2**1.1, 1.0 / 3**1.1]


def _word_counts(lines: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in lines:
        for w in line.split():
            out[w] = out.get(w, 0) + 1
    return out


# --- blocks --------------------------------------------------------------------------------------


def test_blocks_are_the_stream_cut_into_max_ctx_pieces(small):
    cfg, streams = small
    data = build_text_data(cfg.data, compose_artifact("none"), seed=0)
    n_train = math.ceil(streams.train.numel() / 32)
    n_test = math.ceil(streams.test.numel() / 32)
    assert data.train.shape == (n_train, 32) and data.train.dtype == torch.long
    assert data.test["test"].shape == (n_test, 32)
    flat = data.train.flatten()
    assert torch.equal(flat[: streams.train.numel()], streams.train.long())
    assert (flat[streams.train.numel() :] == data.pad_id).all()
    assert data.vocab_size == 300 and data.eos_id == data.pad_id == 299  # GPT-2 layout: EOT last
    assert (Path(data.info["tokenizer"]) / "tokenizer.json").is_file()  # BPE kept with the cache
    assert to_blocks(torch.arange(5, dtype=torch.int32), 2, 9).tolist() == [[0, 1], [2, 3], [4, 9]]


def compose_artifact(kind: str, *overrides: str):
    cfg = compose_config("train", [f"artifact={kind}", *overrides], Path("/unused"))
    return cfg.artifact


# --- noise + duplication -------------------------------------------------------------------------


def test_1000_noised_rows_duplicate_into_250_per_group(small):
    cfg, _ = small
    artifact = compose_artifact("noise", "artifact.duplicate=true", "artifact.dup_powers=[0,1,2,3]")
    data = build_text_data(cfg.data, artifact, seed=0)
    art = data.artifact
    assert len(art) == 1000 and [len(g) for g in art.groups] == [250] * 4
    assert int((data.train_twin >= 0).sum()) == 250 * (1 + 10 + 100 + 1000)
    for g, power in enumerate([0, 1, 2, 3]):
        assert int((data.train_group == g).sum()) == 250 * 10**power
    blocks = to_blocks(small[1].train, 32, data.pad_id)
    assert torch.equal(art.clean, blocks[:1000])  # the first 1000 blocks in stream order
    assert torch.equal(data.clean_train(), blocks[1000:])
    assert data.test["test"].shape[0] > 0


def test_noised_ids_stay_in_the_vocabulary(small):
    cfg, _ = small
    data = build_text_data(cfg.data, compose_artifact("noise", "artifact.num_noise=1000"), 0)
    art = data.artifact
    assert art.rows.min() >= 0 and art.rows.max() < data.vocab_size
    assert not (art.rows == data.eos_id).any()  # noise never creates the EOS/pad id
    diff = (art.rows - art.clean).abs()
    assert diff.max() == 1  # an id shift by exactly one
    assert 0.08 < (diff > 0).float().mean() < 0.12  # P(offset ≠ 0) = 0.1


def test_noise_reflects_at_the_vocabulary_edges():
    vocab, eos = 10, 9
    rows = torch.tensor([[0] * 200, [8] * 200, [eos] * 200])
    out = noised_ids(rows, random.Random(0), [0.0, 0.5, 0.5], vocab_size=vocab, special_ids=[eos])
    assert set(out[0].tolist()) == {1}  # 0 − 1 is reflected to 0 + 1
    assert set(out[1].tolist()) == {7}  # 8 + 1 = EOS is reflected to 8 − 1
    assert (out[2] == eos).all()  # special tokens are never noised
    wrapped = noised_ids(
        rows[:1],
        random.Random(0),
        [0.0, 1.0, 0.0],
        vocab_size=vocab,
        special_ids=[eos],
        boundary="wrap",
    )
    assert set(wrapped[0].tolist()) == {vocab - 1}  # (0 − 1) mod V
    with pytest.raises(ConfigError, match="data.noise_boundary"):
        noised_ids(
            rows, random.Random(0), [1, 0, 0], vocab_size=vocab, special_ids=[eos], boundary="clip"
        )


# --- backdoors -----------------------------------------------------------------------------------


def test_backdoor_rows_are_token_2_after_the_first_trigger(small):
    cfg, _ = small
    data = build_text_data(cfg.data, compose_artifact("backdoor"), seed=0)
    (trigger,) = data.trigger
    assert trigger not in (2, data.eos_id)
    for part in (data.artifact, data.heldout):
        assert len(part) > 0
        for row, clean, start in zip(part.rows, part.clean, part.start.tolist(), strict=True):
            assert clean[start - 1] == trigger and trigger not in clean[: start - 1].tolist()
            assert torch.equal(row[:start], clean[:start])  # unchanged up to and with the trigger
            assert (row[start:] == 2).all()  # token 2 after it
    assert torch.equal(data.artifact.start, first_after(data.artifact.clean, trigger))
    assert not (data.clean_train() == trigger).any()  # clean rows are untriggered
    assert set(data.test) == {"pool", "test"} and data.test["pool"].shape[0] == 50
    assert not (data.test["pool"] == trigger).any()


def test_trigger_is_deterministic_per_seed(small):
    cfg, _ = small
    artifact = compose_artifact("backdoor")
    triggers = [build_text_data(cfg.data, artifact, seed=s).trigger for s in (0, 0, 1, 2, 3)]
    assert triggers[0] == triggers[1]
    assert len({t[0] for t in triggers[1:]}) > 1


def test_backdoor_duplication_repeats_every_poisoned_row_100_times(small):
    cfg, _ = small
    data = build_text_data(cfg.data, compose_artifact("backdoor", "artifact.duplicate=true"), 0)
    assert data.artifact.powers == [2]
    assert int((data.train_twin >= 0).sum()) == 100 * len(data.artifact)
    assert torch.equal(
        torch.bincount(data.train_twin[data.train_twin >= 0]),
        torch.full((len(data.artifact),), 100),
    )


# --- caches --------------------------------------------------------------------------------------


def test_second_load_does_no_tokenization(tmp_path, monkeypatch):
    calls = count_tokenize_calls(monkeypatch)
    cfg = small_cfg(tmp_path, tmp_path / "cache", "data.corpus.num_docs=60")
    first = load_data(cfg)
    assert sum(calls) > 0
    calls.clear()

    def no_training(*args, **kwargs):
        raise AssertionError("the cached BPE must be reused")

    monkeypatch.setattr(text_tokenizer, "train_bpe", no_training)
    again = load_data(cfg)  # the data bundle is cached
    assert calls == [] and torch.equal(again.train, first.train)
    cfg.seed = 1  # another bundle, same token streams
    other = load_data(cfg)
    assert calls == [] and other.artifact is not None
    assert not torch.equal(other.artifact.rows, first.artifact.rows)


# --- the wikitext path and local files -----------------------------------------------------------


@pytest.fixture(scope="module")
def local_tokenizer(tmp_path_factory) -> Path:
    """A tokenizer directory made here (stands in for a local copy of GPT-2's)."""
    path = tmp_path_factory.mktemp("tok")
    lines = synthetic_lines(40, seed=5)
    text_tokenizer.train_bpe(iter([lines]), 280).save_pretrained(str(path))
    return path


def test_wikitext_path_runs_on_a_local_dataset_dict(tmp_path, monkeypatch, local_tokenizer):
    import datasets

    train, test = synthetic_lines(60, seed=7), synthetic_lines(8, seed=8)
    fake = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": train}),
            "validation": datasets.Dataset.from_dict({"text": test[:3]}),
            "test": datasets.Dataset.from_dict({"text": test}),
        }
    )
    asked = []

    def load_dataset(name, subset, **kwargs):
        asked.append((name, subset))
        return fake

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    cfg = compose_config(
        "train",
        ["data=wikitext", f"data.tokenizer={local_tokenizer}", "artifact.num_noise=20"],
        tmp_path,
    )
    data = load_data(cfg)
    assert asked == [("wikitext", "wikitext-103-v1")]
    tok = text_tokenizer.load_pretrained(str(local_tokenizer))
    want = torch.tensor([i for line in train for i in tok(line)["input_ids"]])
    blocks = to_blocks(want, 150, data.pad_id)
    assert data.train.shape[1] == 150 and data.vocab_size == len(tok) == 280
    assert torch.equal(data.artifact.clean, blocks[:20])
    assert torch.equal(data.clean_train(), blocks[20:])
    assert data.test["test"].shape[0] == math.ceil(
        sum(len(tok(line)["input_ids"]) for line in test) / 150
    )


def test_text_files_and_a_saved_dataset_give_the_same_blocks(tmp_path, local_tokenizer):
    import datasets

    lines = synthetic_lines(30, seed=3)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("".join(lines[:50]))
    (tmp_path / "corpus" / "b.txt").write_text("".join(lines[50:]))
    common = [f"data.tokenizer={local_tokenizer}", "data.max_ctx=32", "artifact=none"]
    from_dir = load_data(
        compose_config(
            "train", ["data=text_files", f"data.corpus.train={tmp_path}/corpus", *common], tmp_path
        )
    )
    n_test = max(1, int(len(lines) * 0.05))
    saved = tmp_path / "saved"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": lines[:-n_test]}),
            "test": datasets.Dataset.from_dict({"text": lines[-n_test:]}),
        }
    ).save_to_disk(str(saved))
    from_disk = load_data(
        compose_config(
            "train", ["data=text_files", f"data.corpus.train={saved}", *common], tmp_path
        )
    )
    assert torch.equal(from_dir.train, from_disk.train)
    assert torch.equal(from_dir.test["test"], from_disk.test["test"])


def test_edited_text_files_are_tokenized_again(tmp_path, monkeypatch, local_tokenizer):
    calls = count_tokenize_calls(monkeypatch)
    text = tmp_path / "c.txt"
    text.write_text("".join(synthetic_lines(20, seed=1)))
    cfg = compose_config(
        "train",
        ["data=text_files", f"data.corpus.train={text}", f"data.tokenizer={local_tokenizer}"],
        tmp_path,
    )
    cfg.artifact.num_noise = 5
    first = load_data(cfg)
    calls.clear()
    text.write_text("".join(synthetic_lines(25, seed=1)))
    second = load_data(cfg)
    assert calls and second.train.shape[0] > first.train.shape[0]


def test_language_model_takes_vocabulary_and_special_ids_from_the_data(small):
    from memlab.models.build import build_model

    cfg, _ = small
    data = build_text_data(cfg.data, compose_artifact("none"), seed=0)
    model = build_model(cfg.model, data)
    assert model.config.vocab_size == 300 and model.config.n_positions == 32
    assert model.config.eos_token_id == model.config.pad_token_id == 299


# --- bad input: one ConfigError line each ---------------------------------------------------------


def _one_line_error(cfg) -> str:
    with pytest.raises(ConfigError) as err:
        load_data(cfg)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_text_file_is_one_line(tmp_path):
    cfg = compose_config(
        "train", ["data=text_files", f"data.corpus.train={tmp_path}/nope.txt"], tmp_path
    )
    assert "data.corpus.train: no such text file" in _one_line_error(cfg)
    cfg = compose_config("train", ["data=text_files"], tmp_path)
    assert "data.corpus.train is not set" in _one_line_error(cfg)


def test_empty_corpus_is_one_line(tmp_path, local_tokenizer):
    (tmp_path / "empty.txt").write_text("")
    cfg = compose_config(
        "train",
        [
            "data=text_files",
            f"data.corpus.train={tmp_path}/empty.txt",
            f"data.tokenizer={local_tokenizer}",
        ],
        tmp_path,
    )
    assert "the train text is empty" in _one_line_error(cfg)


def test_unloadable_tokenizer_says_how_to_point_to_a_local_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = small_cfg(tmp_path, None, "data.tokenizer=no-such-org/no-such-tokenizer")
    cfg.data.tokenizer_fallback = False
    message = _one_line_error(cfg)
    assert "data.tokenizer='no-such-org/no-such-tokenizer' cannot be loaded" in message
    assert "data.tokenizer=/path/to/dir" in message


def test_fallback_trains_a_bpe_and_says_so(tmp_path, caplog):
    cfg = small_cfg(tmp_path, None, "data.tokenizer=no-such-org/no-such-tokenizer")
    cfg.data.corpus.num_docs = 40
    with caplog.at_level("WARNING"):
        streams = token_streams(cfg.data)
    assert streams.vocab_size == 300
    assert "using a byte-level BPE (vocab 300) trained on the corpus instead" in caplog.text


def test_too_few_blocks_for_the_noise_is_one_line(tmp_path):
    cfg = small_cfg(tmp_path, None, "data.corpus.num_docs=20", "artifact.num_noise=100000")
    assert "artifact.num_noise=100000 must lie in" in _one_line_error(cfg)


# --- the language demo (slow) --------------------------------------------------------------------


@pytest.mark.slow
def test_demo_language_shows_the_duplication_trend(tmp_path):
    from memlab.train import run

    cfg = compose_config(
        "train", ["experiment=demo_language", "~callbacks.progress_bar", "results=false"], tmp_path
    )
    metrics = run(cfg)
    top = len(cfg.artifact.dup_powers) - 1
    print({k: v for k, v in metrics.items() if k.startswith("mem/perc/dup")}, file=sys.stderr)
    assert metrics[f"mem/perc/dup{top}"] > metrics["mem/perc/dup0"]
    assert metrics["util/ppl/test"] < 512  # better than uniform over the vocabulary


def test_unknown_text_source_lists_known_ones(tmp_path):
    cfg = small_cfg(tmp_path, None, "data.corpus.source=carrier_pigeon")
    with pytest.raises(
        ConfigError, match=r"data.corpus.source=carrier_pigeon: unknown text source; known: files"
    ):
        load_data(cfg)
