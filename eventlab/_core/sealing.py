"""Sealing one personal value with its subject's data key (AES-256-GCM), and opening it.

A sealed value is a BSON binary of subtype 0x80 (user defined) that names its subject, so any
reader holding the key store can open it without knowing the event's class::

    b"elP1" | len(subject): 2 bytes | subject (UTF-8) | nonce: 12 bytes | ciphertext + tag

The plaintext is the value's BSON encoding (``{"v": value}``), so a sealed ``Decimal``,
``datetime`` or list opens as exactly what was sealed. The associated data is the event id,
the field name and the subject: a sealed value copied into another event or field, or
relabelled with another subject, fails authentication and reads as redacted.

The 96-bit nonce is synthetic (a keyed BLAKE2b of the associated data and the plaintext under
a key derived from the data key), not drawn at random: resending an event (the idempotent retry
after :class:`~eventlab.CommitOutcomeUnknownError`) must seal to the same bytes, or the store
would take the retry for another event with the same id. Two different values never share a
nonce (up to a 2**-96 collision of the MAC); the same value in the same field of the same
event seals to the same bytes, which tells an observer only that it is the same event again.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Any

import bson
from bson.binary import Binary
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .bson_values import CODEC_OPTIONS, decimals_to_python, to_bson_value
from .errors import InvalidIdError
from .personal import check_subject

SEALED_SUBTYPE = 0x80
MAGIC = b"elP1"
KEY_BYTES = 32
NONCE_BYTES = 12


class DataKey:
    """A subject's AES-256 data key. Its bytes never appear in a repr, a str or a message."""

    __slots__ = ("_aead", "_header", "_nonce_mac", "_subject_bytes", "subject")

    def __init__(self, subject: str, material: bytes) -> None:
        if not isinstance(material, bytes) or len(material) != KEY_BYTES:
            raise ValueError(f"a data key is {KEY_BYTES} bytes")  # never the bytes themselves
        self.subject = subject
        self._aead = AESGCM(material)
        # A key of its own for the synthetic nonce (never the encryption key itself), held as
        # a keyed BLAKE2b (a PRF: the same as an HMAC for this purpose, and 5x cheaper) that
        # each value's nonce starts from as a copy: keying it once per value cost more than
        # hashing the value.
        self._nonce_mac = hashlib.blake2b(
            key=hmac.digest(material, b"eventlab nonce key", "sha256"), digest_size=NONCE_BYTES
        )
        self._subject_bytes = subject.encode()
        self._header = MAGIC + len(self._subject_bytes).to_bytes(2, "big") + self._subject_bytes

    def __repr__(self) -> str:
        return f"<DataKey subject={self.subject[:80]!r} (material hidden)>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a DataKey cannot be pickled (its material stays in its key store)")

    def seal(self, value: Any, event_id: uuid.UUID, field: str) -> Binary:
        """``value`` sealed for ``field`` of event ``event_id`` (module doc)."""
        return self.seal_plaintext(plaintext_of(value, field), event_id, field)

    def seal_plaintext(self, plaintext: bytes, event_id: uuid.UUID, field: str) -> Binary:
        """A value's :func:`plaintext_of` sealed for ``field`` of event ``event_id``."""
        associated = _associated(event_id, field, self._subject_bytes)
        mac = self._nonce_mac.copy()
        mac.update(associated)
        mac.update(plaintext)
        nonce = mac.digest()
        sealed = self._aead.encrypt(nonce, plaintext, associated)
        return Binary(self._header + nonce + sealed, SEALED_SUBTYPE)

    def open(self, sealed: bytes, event_id: uuid.UUID, field: str) -> tuple[bool, Any]:
        """``(True, value)``, or ``(False, None)`` when the bytes do not authenticate for this
        event, field and subject (moved, altered, or sealed with another key)."""
        parsed = parse_sealed(sealed)
        if parsed is None or parsed[0] != self.subject:
            return False, None
        _, nonce, ciphertext = parsed
        try:
            plaintext = self._aead.decrypt(
                nonce, ciphertext, _associated(event_id, field, self._subject_bytes)
            )
        except InvalidTag:
            return False, None
        document = decimals_to_python(bson.decode(plaintext, codec_options=CODEC_OPTIONS))
        return True, document["v"]


def plaintext_of(value: Any, field: str) -> bytes:
    """What is sealed of ``value``: its BSON encoding (the part of sealing that needs no key,
    done while the key is read)."""
    return bson.encode(
        {"v": to_bson_value(value, f"personal field {field}")}, codec_options=CODEC_OPTIONS
    )


def new_key_material() -> bytes:
    """Fresh random key material (from the operating system's CSPRNG)."""
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is a sealed personal value (a BSON binary or plain bytes)."""
    return isinstance(value, bytes) and value[:4] == MAGIC and len(value) > 6


def looks_sealed(value: Any) -> bool:
    """Whether ``value`` is meant to be a sealed value: a BSON binary of the sealed subtype,
    or bytes that start as one. A malformed one (truncated, altered, another version) reads
    as :data:`~eventlab.REDACTED` on every path, never as bytes."""
    if isinstance(value, Binary):
        return value.subtype == SEALED_SUBTYPE or is_sealed(value)
    return is_sealed(value)


def parse_sealed(value: bytes) -> tuple[str, bytes, bytes] | None:
    """``(subject, nonce, ciphertext)`` of a well-formed sealed value, or ``None``."""
    if not is_sealed(value):
        return None
    length = int.from_bytes(value[4:6], "big")
    end = 6 + length
    if len(value) < end + NONCE_BYTES + 16:
        return None
    try:
        subject = check_subject(value[6:end].decode())
    except (UnicodeDecodeError, InvalidIdError):  # no subject a key store could hold
        return None
    return subject, value[end : end + NONCE_BYTES], value[end + NONCE_BYTES :]


def sealed_subject(value: Any) -> str | None:
    """The subject a sealed value names, or ``None`` if ``value`` is not sealed."""
    parsed = parse_sealed(value) if isinstance(value, bytes) else None
    return None if parsed is None else parsed[0]


def _associated(event_id: uuid.UUID, field: str, subject: bytes) -> bytes:
    return b"\x00".join((event_id.bytes, field.encode(), subject))
