"""AES-256-GCM payload encryption for everything ARGUS writes into Temporal's history.

Every payload (workflow and activity inputs and results, signals, updates, queries, memos and,
through the failure converter, error messages) is serialised, encrypted with the *current* key
and stored as `encoding=binary/encrypted` with the key id in `encryption-key-id`. Decoding uses
whichever known key the metadata names, so keys rotate by id: add a key, make it current, keep
the old one until everything written with it has passed the namespace retention.

The wire format is samples-python's `encryption` codec (12-byte random nonce, then ciphertext
and tag), so Temporal's own tools and codec servers interoperate. The key id is also bound as
associated data: a payload whose metadata was edited to name another key fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    ExternalStorage,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12


class CodecError(ValueError):
    """A payload or a key that cannot be used; the message says which and why."""


def parse_keys(text: str, where: str = "payload keys") -> dict[str, bytes]:
    """`id:base64key[,id:base64key...]` (whitespace and newlines allowed) -> {id: 32-byte key}."""
    keys: dict[str, bytes] = {}
    for n, part in enumerate(p.strip() for p in text.replace("\n", ",").split(",")):
        if not part:
            continue
        key_id, sep, b64 = part.partition(":")
        key_id, b64 = key_id.strip(), b64.strip()
        if not sep or not key_id or not b64:
            raise CodecError(f"{where}: entry {n + 1} is not 'id:base64key'")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CodecError(f"{where}: key {key_id!r} is not valid base64 ({exc})") from None
        if len(raw) != 32:
            raise CodecError(f"{where}: key {key_id!r} is {len(raw)} bytes; AES-256 needs 32")
        if key_id in keys:
            raise CodecError(f"{where}: key id {key_id!r} appears twice")
        keys[key_id] = raw
    if not keys:
        raise CodecError(f"{where}: no keys given")
    return keys


def new_key() -> str:
    """A fresh random 32-byte key, base64, for `argus keys generate`."""
    return base64.b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, current_id: str, keys: Mapping[str, bytes]) -> None:
        if current_id not in keys:
            raise CodecError(f"current key {current_id!r} is not among the keys ({sorted(keys)})")
        self.current_id = current_id
        self._aes = {k: AESGCM(v) for k, v in keys.items()}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._aes)

    def encode_one(self, p: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        kid = self.current_id.encode()
        sealed = self._aes[self.current_id].encrypt(nonce, p.SerializeToString(), kid)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid}, data=nonce + sealed)

    def decode_one(self, p: Payload) -> Payload:
        if p.metadata.get("encoding", b"") != ENCODING:
            return p  # written before encryption was turned on
        kid = p.metadata.get(KEY_ID, b"").decode(errors="replace")
        aes = self._aes.get(kid)
        if aes is None:
            raise CodecError(f"payload encrypted with unknown key {kid!r} (known: {self.key_ids})")
        if len(p.data) <= NONCE_BYTES:
            raise CodecError("encrypted payload is too short")
        try:
            plain = aes.decrypt(p.data[:NONCE_BYTES], p.data[NONCE_BYTES:], kid.encode())
        except InvalidTag:
            raise CodecError(f"payload does not decrypt with key {kid!r} (tampered or wrong key)") from None
        return Payload.FromString(plain)

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]


def data_converter(codec: PayloadCodec | None, storage: ExternalStorage | None = None) -> DataConverter:
    """The pydantic converter, with the codec and encoded failure attributes when given, and
    the payload store for payloads too large for history (`argus.integrations.payload_store`)."""
    converter = pydantic_data_converter
    if codec is not None:
        converter = dataclasses.replace(
            converter,
            payload_codec=codec,
            failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
        )
    if storage is not None:
        converter = dataclasses.replace(converter, external_storage=storage)
    return converter


def codec_from(config, secrets) -> EncryptionCodec | None:  # type: ignore[no-untyped-def]
    """The codec `encryption` asks for, keys from the secret it names; None when off."""
    from .settings import ConfigError

    enc = config.encryption
    if not enc.enabled:
        return None
    text = secrets.get(enc.keys_secret)
    if not text:
        raise ConfigError(
            f"encryption is enabled but secret {enc.keys_secret!r} is not set "
            f"(environment ARGUS_{enc.keys_secret.upper()} or the secrets file), e.g. "
            f"'{enc.current_key}:<32 random bytes, base64>' — `argus keys generate` makes one"
        )
    try:
        return EncryptionCodec(enc.current_key, parse_keys(text, f"secret {enc.keys_secret!r}"))
    except CodecError as exc:
        raise ConfigError(f"encryption: {exc}") from None
