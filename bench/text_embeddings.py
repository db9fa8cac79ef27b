"""A real text-embedding dataset built offline: sentences of the Python documentation (Debian's
``python3.11-doc``) embedded by WordLlama's bundled 256-d model (the ``wordllama`` wheel on PyPI
ships its weights and tokenizer, so nothing is downloaded).

WordLlama pools token embeddings distilled from an LLM's embedding table into sentence vectors
compared by cosine, which gives the anisotropic, clustered spectrum of real sentence embeddings.
The sentences are the prose paragraphs (HTML ``<p>``) of the documentation split at sentence ends,
5 to 60 words long, deduplicated, sorted, then shuffled with a fixed seed.
"""

from __future__ import annotations

import html.parser
import re
from pathlib import Path

import numpy as np

#: where Debian's package puts the HTML documentation
PYTHON_DOCS_DIR = Path("/usr/share/doc/python3.11/html")
PYTHON_DOCS_PACKAGE = "python3.11-doc"
SEED = 20261203
#: words per kept sentence: shorter ones are headings and fragments, longer ones run-ons
MIN_WORDS, MAX_WORDS = 5, 60
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
#: version notes and source links repeat with different version numbers
_BOILERPLATE = ("Source code", "Changed in", "New in", "Deprecated")


class _Paragraphs(html.parser.HTMLParser):
    """The text of every ``<p>`` element of a page (code lives in ``<pre>``, outside them)."""

    def __init__(self):
        super().__init__()
        self.inside, self.text, self.paragraphs = False, [], []

    def handle_starttag(self, tag, attrs):
        if tag == "p":
            self.inside, self.text = True, []

    def handle_endtag(self, tag):
        if tag == "p" and self.inside:
            self.paragraphs.append(" ".join("".join(self.text).split()))
            self.inside = False

    def handle_data(self, data):
        if self.inside:
            self.text.append(data)


def sentences(docs_dir: Path = PYTHON_DOCS_DIR) -> list[str]:
    """The distinct documentation sentences, sorted (the order of the files does not matter)."""
    found = set()
    for page in sorted(docs_dir.rglob("*.html")):
        if {"_static", "_sources"} & set(page.relative_to(docs_dir).parts):
            continue
        parser = _Paragraphs()
        parser.feed(page.read_text(errors="replace"))
        for paragraph in parser.paragraphs:
            for s in _SENTENCE_END.split(paragraph):
                if MIN_WORDS <= len(s.split()) <= MAX_WORDS and s[-1] in ".!?:" and not s.startswith(_BOILERPLATE):
                    found.add(s)
    return sorted(found)


def embed(texts: list[str]) -> np.ndarray:
    """WordLlama's 256-d sentence vectors (float32, not normalised) from the weights in its wheel."""
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as e:
        raise ImportError("the text-embedding dataset needs WordLlama: pip install -e '.[bench]'") from e
    # The wheel ships the tokenizer under tokenizers/, where load() looks for a cached download.
    model = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    return np.ascontiguousarray(model.embed(texts, norm=False), dtype=np.float32)


def build(n_train: int, n_test: int, docs_dir: Path = PYTHON_DOCS_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) vectors of n_train + n_test sentences drawn without replacement."""
    texts = sentences(docs_dir)
    if len(texts) < n_train + n_test:
        raise ValueError(f"{docs_dir} yields {len(texts)} sentences, fewer than the {n_train + n_test} needed.")
    pick = np.random.default_rng(SEED).permutation(len(texts))[:n_train + n_test]
    X = embed([texts[i] for i in pick])
    return X[:n_train], X[n_train:]
