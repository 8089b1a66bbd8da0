"""Where language TinyMem's text comes from (``data.corpus.source``): the Hub, local files, or the
project's own generated corpus. Each source gives a train and a test split of lines.

- ``hub``: ``datasets.load_dataset(corpus.dataset, corpus.subset)`` — wikitext-103 in the paper
  (the reference loads ``wikitext-103-v1``), its ``train`` and ``test`` splits;
- ``files``: plain-text files (a file, a glob, a directory of ``*.txt``, or a list of them) or a
  dataset saved with ``save_to_disk``; without a test split, the last ``corpus.test_fraction`` of
  the lines is held out;
- ``synthetic``: :mod:`memlab.data.text_corpus`, no network at all.

Every source also gives a fingerprint of its inputs (file sizes and times), so caches notice
edited files.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from memlab.data.text_corpus import synthetic_lines
from memlab.errors import ConfigError, lookup

BATCH_LINES = 1000


@dataclass
class TextSplit:
    """Lines of one split, read in batches (a Hub dataset is never turned into one big list)."""

    num_lines: int
    read: Callable[[int], Iterator[list[str]]]

    def batches(self, size: int = BATCH_LINES) -> Iterator[list[str]]:
        return self.read(size)


def list_split(lines: Sequence[str]) -> TextSplit:
    def read(size: int) -> Iterator[list[str]]:
        for lo in range(0, len(lines), size):
            yield list(lines[lo : lo + size])

    return TextSplit(len(lines), read)


def dataset_split(dataset, column: str, max_lines: int | None = None) -> TextSplit:
    """A split of a HF ``Dataset`` (``column`` holds the text)."""
    if column not in dataset.column_names:
        raise ConfigError(
            f"data.corpus.text_column='{column}' is not a column of the dataset "
            f"(columns: {', '.join(dataset.column_names)})"
        )
    if max_lines is not None:
        dataset = dataset.select(range(min(max_lines, len(dataset))))

    def read(size: int) -> Iterator[list[str]]:
        for batch in dataset.iter(batch_size=size):
            yield batch[column]

    return TextSplit(len(dataset), read)


def _from_dataset_dict(dd, corpus) -> dict[str, TextSplit]:
    missing = [s for s in (corpus.train_split, corpus.test_split) if s not in dd]
    if missing:
        raise ConfigError(
            f"data.corpus: split '{missing[0]}' not in the dataset (splits: {', '.join(dd)}); "
            "set data.corpus.train_split / data.corpus.test_split"
        )
    limit = corpus.get("max_lines")
    return {
        "train": dataset_split(dd[corpus.train_split], corpus.text_column, limit),
        "test": dataset_split(dd[corpus.test_split], corpus.text_column, limit),
    }


def hub_splits(corpus) -> dict[str, TextSplit]:
    """``datasets.load_dataset(dataset, subset)`` — the real path for wikitext-103."""
    import datasets

    try:
        dd = datasets.load_dataset(corpus.dataset, corpus.subset)
    except (OSError, ValueError, ConnectionError) as err:
        raise ConfigError(
            f"data.corpus.dataset='{corpus.dataset}' ({corpus.subset}) cannot be loaded "
            f"({type(err).__name__}; offline?): save it once with save_to_disk and use "
            "data=text_files data.corpus.train=/path/to/saved_dataset"
        ) from None
    return _from_dataset_dict(dd, corpus)


def expand_paths(spec, key: str) -> list[Path]:
    """Files named by ``spec`` (a path, a glob, a directory of *.txt, or a list of them)."""
    specs = [spec] if isinstance(spec, str | Path) else list(spec)
    files: list[Path] = []
    for item in specs:
        path = Path(str(item)).expanduser()
        if path.is_dir():
            found = sorted(path.glob("*.txt"))
        elif any(c in str(item) for c in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(path)))
        else:
            found = [path] if path.is_file() else []
        if not found:
            raise ConfigError(f"{key}: no such text file or directory: {item}")
        files += found
    return files


def is_saved_dataset(spec) -> bool:
    path = Path(str(spec)).expanduser() if isinstance(spec, str | Path) else None
    return (
        path is not None
        and path.is_dir()
        and ((path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file())
    )


def read_lines(files: list[Path]) -> list[str]:
    """Every line of ``files`` in order, newlines kept (like wikitext's lines)."""
    lines: list[str] = []
    for f in files:
        with open(f, encoding="utf-8") as handle:
            lines += handle.readlines()
    return lines


def held_out(lines: list[str], fraction: float) -> dict[str, TextSplit]:
    """The last ``fraction`` of the lines as test (at least one line when there are two or more)."""
    n_test = int(len(lines) * fraction)
    if fraction > 0 and len(lines) > 1:
        n_test = max(n_test, 1)
    cut = len(lines) - n_test
    return {"train": list_split(lines[:cut]), "test": list_split(lines[cut:])}


def file_splits(corpus) -> dict[str, TextSplit]:
    """Local text files or a ``save_to_disk`` dataset (how users work offline or with own text)."""
    if corpus.get("train") in (None, ""):
        raise ConfigError(
            "data.corpus.train is not set: point it to text files, a directory of *.txt or a "
            "dataset saved with save_to_disk (data.corpus.train=/path/to/text)"
        )
    if is_saved_dataset(corpus.train):
        import datasets

        saved = datasets.load_from_disk(str(Path(str(corpus.train)).expanduser()))
        if isinstance(saved, datasets.DatasetDict):
            return _from_dataset_dict(saved, corpus)
        lines = dataset_split(saved, corpus.text_column)
        return held_out([x for b in lines.batches() for x in b], corpus.test_fraction)
    train_lines = read_lines(expand_paths(corpus.train, "data.corpus.train"))
    if corpus.get("test") in (None, ""):
        return held_out(train_lines, corpus.test_fraction)
    test_lines = read_lines(expand_paths(corpus.test, "data.corpus.test"))
    return {"train": list_split(train_lines), "test": list_split(test_lines)}


def synthetic_splits(corpus) -> dict[str, TextSplit]:
    """The generated English-like corpus; the test split is a separate set of documents."""
    lines = synthetic_lines(corpus.num_docs + corpus.test_docs, corpus.seed)
    docs = [i for i, line in enumerate(lines) if line.startswith(" = ")]
    cut = docs[corpus.num_docs] if corpus.test_docs else len(lines)
    return {"train": list_split(lines[:cut]), "test": list_split(lines[cut:])}


SOURCES: dict[str, Callable[..., dict[str, TextSplit]]] = {
    "hub": hub_splits,
    "files": file_splits,
    "synthetic": synthetic_splits,
}


def text_splits(corpus) -> dict[str, TextSplit]:
    """The train and test lines of ``data.corpus``."""
    return lookup(SOURCES, corpus.source, kind="text source", key="data.corpus.source")(corpus)


def fingerprint(corpus) -> list:
    """Size and modification time of every local input, so caches notice edited files."""
    if corpus.source != "files" or corpus.get("train") in (None, ""):
        return []
    specs = [corpus.train] + ([corpus.test] if corpus.get("test") else [])
    stamps = []
    for spec in specs:
        if is_saved_dataset(spec):
            files = sorted(p for p in Path(str(spec)).expanduser().rglob("*") if p.is_file())
        else:
            try:
                files = expand_paths(spec, "data.corpus")
            except ConfigError:
                return []  # reported, with its key, when the text is read
        stamps += [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return stamps
