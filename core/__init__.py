"""Foundation: settings, offline runtime, speech engine, sample corpus, synthesis; imports no voiceloop package."""
