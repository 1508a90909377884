"""voiceloop: the governed retraining loop for production voice bots."""

__version__ = "0.1.0"
