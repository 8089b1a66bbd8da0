"""The TinyMem math vocabulary: 14 character-level tokens.

ids 0–9 are the digits, 10 = ``^`` (BOS), 11 = ``$`` (EOS), 12 = space, 13 = PAD.
Unlike the reference (deviations.md D02), an unknown character is an error, never silently dropped.
"""

from __future__ import annotations

import torch

from memlab.errors import ConfigError

BOS, EOS, SPACE, PAD = 10, 11, 12, 13
VOCAB_SIZE = 14
_SYMBOLS = {**{str(d): d for d in range(10)}, "^": BOS, "$": EOS, " ": SPACE}
_INVERSE = {v: k for k, v in _SYMBOLS.items()} | {PAD: "_"}


def sequence_text(values: list[int]) -> str:
    """``^v1 v2 … vn$`` — the string form of one sequence."""
    return "^" + " ".join(str(v) for v in values) + "$"


def encode(text: str) -> list[int]:
    """Character-level ids; raises on any character outside the vocabulary (deviations.md D02)."""
    try:
        return [_SYMBOLS[c] for c in text]
    except KeyError as err:
        raise ValueError(
            f"character {err.args[0]!r} is not in the TinyMem math vocabulary"
        ) from None


def decode(ids: list[int] | torch.Tensor) -> str:
    """Inverse of :func:`encode` (PAD shown as ``_``)."""
    return "".join(_INVERSE[int(i)] for i in ids)


_UNKNOWN = 255
_BYTE_IDS = bytes(_SYMBOLS.get(chr(b), _UNKNOWN) for b in range(256))


def encode_batch(rows: list[list[int]], max_ctx: int) -> torch.Tensor:
    """Encode value lists into a right-padded int64 tensor [n, max_ctx]; too-long rows are an error.

    Byte-level translation of the texts (same ids as :func:`encode`, ~10× faster for 10⁵ rows)."""
    padded = []
    for values in rows:
        ids = sequence_text(values).encode("ascii").translate(_BYTE_IDS)
        if len(ids) > max_ctx:
            raise ConfigError(
                f"data.max_ctx={max_ctx}: too short, a sequence needs {len(ids)} tokens; "
                f"raise data.max_ctx to at least {len(ids)} or lower data.length"
            )
        padded.append(ids.ljust(max_ctx, bytes([PAD])))
    flat = torch.frombuffer(bytearray(b"".join(padded)), dtype=torch.uint8)
    if (flat == _UNKNOWN).any():
        raise ValueError("a value has a character outside the TinyMem math vocabulary")
    return flat.long().reshape(len(rows), max_ctx)
