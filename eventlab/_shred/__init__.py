"""Crypto-shredding: personal fields sealed with a per-subject data key at append, opened on
read, and forgotten for good by destroying the key (docs/forgetting.md).

``keys``: the key-store port (:class:`KeyStore`) every key store fills in (MongoDB's, the
in-memory one, a KMS of your own). ``personal_data``: :class:`PersonalData`, what a store uses
to seal an append and to open what it reads. ``frames``: opening the personal columns of a
frame or an Arrow table (with the ``redacted`` flag column).

May import: ``_core`` only (the ports re-export :class:`KeyStore`).
"""

from .keys import KeyStore
from .personal_data import PersonalData

__all__ = ["KeyStore", "PersonalData"]
