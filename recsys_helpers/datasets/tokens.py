"""Words as padded integer ids: the one encoder of item descriptions and film titles."""

from __future__ import annotations

import numpy as np


def token_ids(docs: list[list[str]], max_words: int, min_count: int) -> tuple[np.ndarray, list[str]]:
    """(n_docs, max_words) ids of each document's words (its first ``max_words``), 0 = padding;
    and the vocabulary (sorted). Ids start at 1; words in fewer than ``min_count`` documents are
    dropped."""
    docs = [doc[:max_words] for doc in docs]
    counts: dict[str, int] = {}
    for doc in docs:
        for w in set(doc):
            counts[w] = counts.get(w, 0) + 1
    vocabulary = sorted(w for w, n in counts.items() if n >= min_count)
    index = {w: j + 1 for j, w in enumerate(vocabulary)}
    tokens = np.zeros((len(docs), max_words), dtype="int32")
    for i, doc in enumerate(docs):
        ids = [index[w] for w in doc if w in index]
        tokens[i, : len(ids)] = ids
    return tokens, vocabulary
