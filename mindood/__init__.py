"""mindood: MindooDB in Python, an end-to-end encrypted, offline-first sync daemon and library."""

__version__ = "0.1.0"
