"""voiceloop: the command line (and the demo call simulator) on top of every other package; nothing imports it."""

__version__ = "0.1.0"
