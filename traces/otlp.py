"""OTLP/HTTP's wire formats: request bodies in, responses and error statuses out.

The OTLP specification (opentelemetry-proto, ``docs/specification.md``) defines two encodings of
one message: binary protobuf (``application/x-protobuf``) and OTLP/JSON (``application/json``),
which is protobuf's canonical JSON mapping except that trace and span ids are hex strings (not
base64) and that enums may be given as integers. Either may be gzipped (``Content-Encoding: gzip``).
Every message is parsed by ``opentelemetry-proto``'s generated classes, never by hand.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentplatform.errors import MalformedRequest, PayloadTooLarge, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = (PROTOBUF, JSON)

# gRPC status codes (google.rpc.Code) for the HTTP statuses this endpoint answers.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 500: 13, 503: 14}


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def gunzip(body: bytes, *, limit: int) -> bytes:
    """``body`` un-gzipped, refusing more than ``limit`` bytes of output (a gzip bomb) with a 413.

    Several gzip members one after another are one stream (RFC 1952), as ``gzip.decompress`` reads it.
    """
    output = bytearray()
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            output += inflater.decompress(rest, limit + 1 - len(output))
        except zlib.error as exc:
            raise MalformedRequest(f"The body is not valid gzip: {exc}.") from None
        if len(output) > limit:
            raise PayloadTooLarge(f"The decompressed body is larger than this endpoint accepts ({limit} bytes).")
        if inflater.unconsumed_tail:  # stopped by the limit with input left: more than the limit
            raise PayloadTooLarge(f"The decompressed body is larger than this endpoint accepts ({limit} bytes).")
        if not inflater.eof:
            raise MalformedRequest("The body is not valid gzip: the stream is truncated.")
        rest = inflater.unused_data
        if not rest.strip(b"\x00"):
            return bytes(output)


def decode_body(body: bytes, *, encoding: str) -> ExportTraceServiceRequest:
    """The request message from a body in ``encoding`` (PROTOBUF or JSON); 400 when undecodable."""
    if encoding == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise MalformedRequest(f"The body is not an OTLP ExportTraceServiceRequest protobuf: {exc}.") from None
    if encoding == JSON:
        return _decode_json(body)
    raise UnsupportedMediaType(f"Send {PROTOBUF} or {JSON}.")


def _decode_json(body: bytes) -> ExportTraceServiceRequest:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedRequest(f"The body is not valid JSON: {exc}.") from None
    if not isinstance(payload, dict):
        raise MalformedRequest("The body must be a JSON object (an OTLP/JSON ExportTraceServiceRequest).")
    try:
        _ids_to_base64(payload)
        return json_format.ParseDict(payload, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise MalformedRequest(f"The body is not an OTLP/JSON ExportTraceServiceRequest: {exc}.") from None


def _hex_to_base64(value: Any) -> Any:
    """An OTLP/JSON hex id as protobuf-JSON's base64; an id that is not hex becomes empty (its span
    is then refused on its own, as partial success, instead of failing the whole request)."""
    if not isinstance(value, str):
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return ""
    return base64.b64encode(raw).decode("ascii")


def _ids_to_base64(payload: dict) -> None:
    for resource_spans in _objects(payload.get("resourceSpans", payload.get("resource_spans"))):
        for scope_spans in _objects(resource_spans.get("scopeSpans", resource_spans.get("scope_spans"))):
            for span in _objects(scope_spans.get("spans")):
                _convert_ids(span, ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"))
                for link in _objects(span.get("links")):
                    _convert_ids(link, ("traceId", "trace_id", "spanId", "span_id"))


def _objects(value: Any) -> list[dict]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _convert_ids(message: dict, names: tuple[str, ...]) -> None:
    for name in names:
        if name in message:
            message[name] = _hex_to_base64(message[name])


def response_body(*, rejected: int, message: str, encoding: str) -> bytes:
    """An ``ExportTraceServiceResponse`` (with ``partial_success`` when spans were refused)."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == PROTOBUF:
        return response.SerializeToString()
    return json.dumps(json_format.MessageToDict(response), separators=(",", ":")).encode()


def status_body(*, http_status: int, message: str) -> bytes:
    """A ``google.rpc.Status`` in protobuf: OTLP's error body for a protobuf request."""
    return status_pb2.Status(code=GRPC_CODES.get(http_status, 2), message=message).SerializeToString()
