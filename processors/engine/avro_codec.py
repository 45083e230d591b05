"""The faust codec that wraps schemas.codec, registered once as ``twin_avro``.

Values on every catalogue topic are our framed Avro (magic, schema id, version, body); agents
receive the pydantic model, never raw bytes.
"""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from schemas.codec import decode_model, encode_model

__all__ = ["AvroModelCodec", "CODEC_NAME"]

CODEC_NAME = "twin_avro"


class AvroModelCodec(codecs.Codec):
    """Encode a schemas.models model to framed Avro, and back."""

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, (bytes, bytearray)):
            return bytes(obj)  # already encoded (e.g. a dead-letter copy)
        return encode_model(obj)

    def _loads(self, s: bytes) -> Any:
        return decode_model(s)


if CODEC_NAME not in codecs.codecs:
    codecs.register(CODEC_NAME, AvroModelCodec())
