"""One way to connect to Temporal, so every process uses the same data converter and codec.

Every client and worker must read every other's payloads: build them all here, passing the
payload codec (`codec.codec_from(config, secrets)`) whenever encryption is configured.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.converter import PayloadCodec

from .codec import data_converter


async def connect(address: str, namespace: str, codec: PayloadCodec | None = None) -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=data_converter(codec))
