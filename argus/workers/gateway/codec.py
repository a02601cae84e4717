"""The codec server: lets the Temporal Web UI (`--ui-codec-endpoint`) and CLI
(`temporal workflow show --codec-endpoint <gateway>/codec --codec-auth 'Bearer <token>'`) show
encrypted payloads to people whose role may see them (`encryption.decode_role`).

Wire format (Temporal's remote codec protocol): `POST /codec/decode` and `/codec/encode` with a
protobuf-JSON `Payloads` body (`{"payloads": [{"metadata": {...base64}, "data": base64}]}`),
answered in kind; `X-Namespace` names the namespace. The browser calls it directly from the UI's
origin, hence CORS for the configured origins; the keys never leave ARGUS.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from ..codec import CodecError, EncryptionCodec, codec_from
from ..settings import load_secrets
from .context import GatewayContext, GatewayError

ALLOWED_HEADERS = "content-type,x-namespace,authorization"


def codec_of(ctx: GatewayContext) -> EncryptionCodec | None:
    if "codec" not in ctx.extras:
        cfg = ctx.config
        ctx.extras["codec"] = codec_from(cfg, load_secrets(cfg)) if cfg.encryption.enabled else None
    return ctx.extras["codec"]


def router(ctx: GatewayContext) -> APIRouter:
    r = APIRouter(tags=["codec"])
    origins = set(ctx.config.encryption.codec_cors_origins)
    codec = codec_of(ctx)  # a ConfigError here names the missing or bad key secret

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin")
        if origin and origin in origins:
            return {
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Vary": "Origin",
            }
        return {"Vary": "Origin"}

    async def run(request: Request, direction: str) -> Response:
        if codec is None:
            raise GatewayError(404, "payload encryption is not enabled (encryption.enabled)")
        ns = request.headers.get("x-namespace")
        if ns and ns != ctx.config.temporal.namespace:
            raise GatewayError(
                400, f"this codec serves namespace {ctx.config.temporal.namespace!r}, not {ns!r}"
            )
        body = await ctx.body(request, f"codec_{direction}")
        payloads = Payloads()
        try:
            json_format.Parse(body or b"{}", payloads)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise GatewayError(400, f"body is not a protobuf-JSON Payloads object: {exc}") from exc
        work: Any = codec.decode if direction == "decode" else codec.encode
        try:
            out = await work(list(payloads.payloads))
        except CodecError as exc:
            raise GatewayError(422, f"cannot {direction}: {exc}") from exc
        request.state.audit_target = f"namespace {ns or ctx.config.temporal.namespace}"
        request.state.audit_detail = f"{direction}d {len(out)} payload(s)"
        text = await asyncio.to_thread(json_format.MessageToJson, Payloads(payloads=out), indent=None)
        return Response(text, media_type="application/json", headers=cors(request))

    @r.options("/codec/decode", include_in_schema=False)
    @r.options("/codec/encode", include_in_schema=False)
    async def preflight(request: Request) -> Response:
        return Response(status_code=204, headers=cors(request))

    @r.post("/codec/decode", summary="Decrypt payloads for the Temporal Web UI and CLI")
    async def decode(request: Request) -> Response:
        return await run(request, "decode")

    @r.post("/codec/encode", summary="Encrypt payloads (the Web UI sends signals this way)")
    async def encode(request: Request) -> Response:
        return await run(request, "encode")

    return r
