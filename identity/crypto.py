"""Personal data at rest: AES-256-GCM under keys derived from the master key,
and an HMAC-SHA256 blind index so that encrypted values can still be looked up.

The master key never encrypts data directly: HKDF derives one key per purpose
(``data`` for encryption, ``index`` for blind indexes, ``secret`` for hashing
OTP codes and client secrets), so one leaked derived key does not give the rest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"superapp/v1", info=purpose.encode()
    ).derive(master)


class Vault:
    """Encrypts personal data and computes blind indexes."""

    def __init__(self, master_key_b64: str) -> None:
        master = base64.b64decode(master_key_b64)
        if len(master) != 32:
            raise ValueError("master key must be 32 bytes")
        self._aead = AESGCM(_derive(master, "data"))
        self._index_key = _derive(master, "index")
        self._secret_key = _derive(master, "secret")
        self._mac_key = _derive(master, "mac")

    def encrypt(self, plaintext: str, *, context: str) -> bytes:
        """Encrypt; ``context`` (e.g. ``"phone"``) is bound as associated data so a
        ciphertext copied into another column does not decrypt."""
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def decrypt(self, blob: bytes, *, context: str) -> str:
        if not blob or blob[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, ct = blob[1:13], blob[13:]
        return self._aead.decrypt(nonce, ct, context.encode()).decode()

    def blind_index(self, value: str, *, context: str) -> bytes:
        return hmac.new(self._index_key, f"{context}\x00{value}".encode(), hashlib.sha256).digest()

    def secret_hash(self, value: str, *, context: str) -> bytes:
        """Keyed hash for short secrets (OTP codes): useless without the master key."""
        return hmac.new(self._secret_key, f"{context}\x00{value}".encode(), hashlib.sha256).digest()

    def mac(self, data: bytes, *, context: str) -> bytes:
        """HMAC-SHA256 under a key derived from the master key: a record only this
        deployment can make (e.g. of a QR code it issued, kept in Redis)."""
        return hmac.new(self._mac_key, context.encode() + b"\x00" + data, hashlib.sha256).digest()


def token_hash(token: str) -> bytes:
    """Hash of a high-entropy bearer secret (refresh tokens, client secrets)."""
    return hashlib.sha256(token.encode()).digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
