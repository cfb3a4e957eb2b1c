"""Content-addressed stores of signed, encrypted entries.

This package holds and moves ciphertext and metadata. It never sees a content key and never
decrypts; it verifies signatures and content hashes with public keys only. It imports nothing
from ``mindood``, ``protocol`` or ``transports`` (DESIGN.md, "the rule that shapes everything").
"""
