"""Lexical intent model: TF-IDF word and character n-grams + multinomial logistic regression.

It sees surface forms the sentence encoder blurs (exact words, word pairs, spellings), so its
errors differ from the encoder's; ``IntentModel`` blends the two log-linearly
(``IntentConfig.lexical_weight``). Saved as plain data, never pickled, because serving loads
model folders: the vocabularies go to ``lexical.json``, the idf weights and the regression's
coefficients to ``lexical.npz`` (float32); loading rebuilds the vectorizers from them, and a
freshly fitted model predicts through the same rebuilt path, so save -> load is exact.

Its vocabularies hold only n-grams that public text (BANKING77) or several callers used
(``IntentConfig.lexical_min_callers``): a word one caller said never ships with a model.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

LEXICAL_JSON = "lexical.json"
LEXICAL_ARRAYS = "lexical.npz"
FORMAT = "voiceloop-intent-lexical/1"
MAX_ITER = 300  # as in the experiment that chose C and the blend weight

# Vectorizer settings (besides the vocabulary). min_df is a fitting-time choice only.
_COMMON: dict[str, Any] = {"lowercase": True, "sublinear_tf": True, "norm": "l2", "smooth_idf": True}
_VECTORIZERS: dict[str, dict[str, Any]] = {
    "word": {"analyzer": "word", "ngram_range": (1, 2)},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5)},
}
_MIN_DF = {"word": 1, "char": 2}


def _vectorizer(kind: str, vocabulary: list[str] | None = None, min_df: int = 1) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vocab = None if vocabulary is None else {term: i for i, term in enumerate(vocabulary)}
    return TfidfVectorizer(**_COMMON, **_VECTORIZERS[kind], vocabulary=vocab, min_df=min_df, dtype=np.float32)


def _shared_terms(vectorizer: Any, texts: list[str], callers: Sequence[str | None], min_callers: int) -> list[str]:
    """The fitted vocabulary's terms that a public text, or texts of ``min_callers`` distinct callers, hold."""
    occurrences = vectorizer.transform(texts).tocsc()
    shared = []
    for column, term in enumerate(vectorizer.get_feature_names_out()):
        rows = occurrences.indices[occurrences.indptr[column]:occurrences.indptr[column + 1]]
        owners = {callers[row] for row in rows}
        if None in owners or len(owners) >= min_callers:
            shared.append(str(term))
    return shared


@dataclass
class LexicalModel:
    """Linear scores over TF-IDF features; ``log_proba`` columns follow ``labels``.

    ``classes`` are the label indices seen in training (rows of ``coef``); labels never seen
    get, per text, the lowest score of the seen ones, so the blend neither boosts nor vetoes them.
    """

    labels: list[str]
    vocabularies: dict[str, list[str]]
    idf: dict[str, np.ndarray]
    coef: np.ndarray  # (n_classes, n_features) float32, features word then char
    intercept: np.ndarray  # (n_classes,) float32
    classes: np.ndarray  # (n_classes,) int64 indices into labels
    c: float

    def __post_init__(self) -> None:
        self._vectorizers: dict[str, Any] = {}
        for kind, vocabulary in self.vocabularies.items():
            vectorizer = _vectorizer(kind, vocabulary)
            vectorizer.idf_ = self.idf[kind]
            self._vectorizers[kind] = vectorizer

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], label_names: list[str], c: float,
            callers: Sequence[str | None] | None = None, min_callers: int = 1) -> LexicalModel | None:
        """Fit on the intent model's training data; None when it cannot support a model (one
        class only, or no n-gram occurs in enough texts).

        ``callers`` names each text's caller (a pseudonym; None: public text such as BANKING77). The
        vocabularies then keep an n-gram only if a public text or the texts of ``min_callers`` distinct
        callers hold it: ``lexical.json`` ships with every bundle, so a word only one caller said (a name
        redaction missed, a street) must not be in it.
        """
        from scipy.sparse import hstack
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency

        index = {name: i for i, name in enumerate(label_names)}
        y = np.array([index[label] for label in labels], dtype=np.int64)
        if len(np.unique(y)) < 2:
            log.warning("lexical model skipped: fewer than two intents in the training data")
            return None
        fitted: dict[str, Any] = {}
        try:
            for kind in _VECTORIZERS:
                fitted[kind] = _vectorizer(kind, min_df=_MIN_DF[kind] if len(texts) > 1 else 1).fit(texts)
                if callers is not None and min_callers > 1:
                    shared = _shared_terms(fitted[kind], texts, callers, min_callers)
                    if not shared:
                        raise ValueError(f"no {kind} n-gram is public or said by {min_callers} callers")
                    fitted[kind] = _vectorizer(kind, shared).fit(texts)
        except ValueError as err:  # empty vocabulary
            log.warning("lexical model skipped: %s", err)
            return None
        features = hstack([v.transform(texts) for v in fitted.values()]).tocsr().astype(np.float64)
        # One BLAS thread: the solver's matrices are small, and threads spinning on busy cores made
        # fitting twice as slow (20 s vs 46 s on 2 shared cores).
        with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
            # C and the blend weight were chosen with this iteration cap; not fully converging is expected.
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=c, max_iter=MAX_ITER).fit(features, y)
        coef, intercept = np.asarray(clf.coef_), np.asarray(clf.intercept_)
        if coef.shape[0] == 1:  # binary: p(class 1) = sigmoid(z) = softmax([-z/2, z/2])[1]
            coef, intercept = np.vstack([-coef / 2, coef / 2]), np.concatenate([-intercept / 2, intercept / 2])
        return cls(
            labels=list(label_names),
            vocabularies={kind: v.get_feature_names_out().tolist() for kind, v in fitted.items()},
            idf={kind: v.idf_.astype(np.float32) for kind, v in fitted.items()},
            coef=coef.astype(np.float32),
            intercept=intercept.astype(np.float32),
            classes=np.asarray(clf.classes_, dtype=np.int64),
            c=float(c),
        )

    @property
    def n_features(self) -> int:
        return sum(len(v) for v in self.vocabularies.values())

    def log_proba(self, texts: list[str]) -> np.ndarray:
        """Log-probabilities, shape (len(texts), len(labels)), float64."""
        from scipy.sparse import hstack
        from scipy.special import logsumexp

        out = np.empty((len(texts), len(self.labels)))
        if not texts:
            return out
        features = hstack([self._vectorizers[kind].transform(texts) for kind in self.vocabularies]).tocsr()
        scores = np.asarray(features @ self.coef.T, dtype=np.float64) + self.intercept
        out[:] = scores.min(axis=1, keepdims=True)
        out[:, self.classes] = scores
        return out - logsumexp(out, axis=1, keepdims=True)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "labels": self.labels,
            "c": self.c,
            "vectorizers": {
                kind: {**_COMMON, **_VECTORIZERS[kind], "vocabulary": self.vocabularies[kind]}
                for kind in self.vocabularies
            },
        }
        (folder / LEXICAL_JSON).write_text(json.dumps(meta, ensure_ascii=False))
        arrays: dict[str, Any] = {"coef": self.coef, "intercept": self.intercept, "classes": self.classes}
        arrays.update({f"idf_{kind}": self.idf[kind] for kind in self.vocabularies})
        np.savez_compressed(folder / LEXICAL_ARRAYS, **arrays)

    @classmethod
    def load(cls, folder: Path) -> LexicalModel:
        folder = Path(folder)
        meta = json.loads((folder / LEXICAL_JSON).read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"unknown lexical model format {meta.get('format')!r} in {folder}")
        kinds = list(meta["vectorizers"])
        if set(kinds) - _VECTORIZERS.keys():
            raise ValueError(f"unknown vectorizers {kinds} in {folder}")
        with np.load(folder / LEXICAL_ARRAYS, allow_pickle=False) as arrays:
            return cls(
                labels=list(meta["labels"]),
                vocabularies={kind: list(meta["vectorizers"][kind]["vocabulary"]) for kind in kinds},
                idf={kind: arrays[f"idf_{kind}"] for kind in kinds},
                coef=arrays["coef"],
                intercept=arrays["intercept"],
                classes=arrays["classes"],
                c=float(meta["c"]),
            )

    @staticmethod
    def exists(folder: Path) -> bool:
        return (Path(folder) / LEXICAL_JSON).exists() and (Path(folder) / LEXICAL_ARRAYS).exists()


def blend(logits: torch.Tensor, lexical_log_proba: np.ndarray, weight: float) -> torch.Tensor:
    """Log-linear blend ``p ~ p_model^(1 - w) * p_lexical^w``, renormalised: the result is
    log-probabilities (its softmax is the blended distribution, its argmax the prediction)."""
    model = torch.log_softmax(logits.float(), dim=-1)
    lexical = torch.from_numpy(lexical_log_proba).to(model.dtype)
    return torch.log_softmax((1.0 - weight) * model + weight * lexical, dim=-1)
