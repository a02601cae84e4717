"""One way to connect to Temporal, so every process uses the same data converter and codec.

Every client and worker must read every other's payloads: build them all here, passing the
payload codec (`codec.codec_from(config, secrets)`) whenever encryption is configured, and the
payload store (`payload_storage(config, state)`) unless it is turned off.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client
from temporalio.converter import ExternalStorage, PayloadCodec

from argus.integrations.payload_store import SqlPayloadDriver, external_storage
from argus.integrations.sql import sqlite_url
from argus.models import ArgusConfig

from .codec import data_converter


async def connect(
    address: str, namespace: str, codec: PayloadCodec | None = None, storage: ExternalStorage | None = None
) -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=data_converter(codec, storage))


def payload_storage(config: ArgusConfig, state: Path) -> ExternalStorage | None:
    """The payload store `temporal.payload_store` asks for (None when off): the same for every
    process of a deployment, like the codec."""
    ps = config.temporal.payload_store
    if not ps.enabled:
        return None
    return external_storage(
        SqlPayloadDriver(ps.url or sqlite_url(state / "temporal-payloads.db"), ps.keep_for)
    )
