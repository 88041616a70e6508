"""Word-level tokenizer of the lab's language models: words, numbers and punctuation, lower-cased.

Word-level rather than byte-pair because the training text is small (a few
hundred thousand words of docstrings): a BPE vocabulary learned from it would
spend most of its entries on fragments, while whole words make each generated
token readable on its own in a stream.  The vocabulary is the most frequent
tokens (ties broken by spelling, so the same text always gives the same ids),
plus ``<unk>`` and ``<eos>``.

:meth:`Tokenizer.piece` gives the text a token adds to the output *given the
previous token* (a space before words, none before ``.`` or after ``(``), so
the concatenated ``delta.content`` of a stream is the decoded text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

UNK, EOS = 0, 1
SPECIALS = ("<unk>", "<eos>")
_TOKEN = re.compile(r"[a-z]+|\d+|[^\w\s]")
_NO_SPACE_BEFORE = frozenset(".,:;)]}!?'%")
_NO_SPACE_AFTER = frozenset("([{'")


def split(text: str) -> list[str]:
    """The token strings of ``text`` (lower-cased; underscores split words, as in ``get_item``)."""
    return _TOKEN.findall(text.lower().replace("_", " "))


class Tokenizer:
    """A fixed vocabulary: token string ↔ id."""

    def __init__(self, vocab: Sequence[str]) -> None:
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        self.vocab = list(vocab)
        self.ids = {t: i for i, t in enumerate(self.vocab)}

    @classmethod
    def fit(cls, texts: Iterable[str], size: int) -> Tokenizer:
        """The ``size`` - 2 most frequent tokens of ``texts`` plus the two specials."""
        counts: Counter[str] = Counter()
        for t in texts:
            counts.update(split(t))
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - len(SPECIALS)]
        return cls([*SPECIALS, *(t for t, _ in top)])

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        get = self.ids.get
        return [get(t, UNK) for t in split(text)]

    def piece(self, token: int, previous: int | None) -> str:
        """The text ``token`` appends after ``previous`` (None: first token of the output)."""
        s = self.vocab[token] if token > EOS else ""
        if not s or previous is None or s[0] in _NO_SPACE_BEFORE:
            return s
        prev = self.vocab[previous] if previous > EOS else ""
        return s if prev and prev[-1] in _NO_SPACE_AFTER else " " + s

    def decode(self, tokens: Sequence[int]) -> str:
        out, prev = [], None
        for t in tokens:
            out.append(self.piece(t, prev))
            prev = t
        return "".join(out)
