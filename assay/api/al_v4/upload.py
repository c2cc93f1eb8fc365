"""Reading an ingest or submit request: the file stored, its JSON description read into fields.

Two encodings, as the client sends them: multipart (part ``json`` + part ``bin``) or a JSON
body naming the file another way (``sha256`` of a stored file, ``plaintext``, ``base64``).
Either way the route gets one typed object (:class:`IngestRequest`, :class:`SubmitRequest`)
and never sees the raw description.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from assay import fastjson
from assay.access import Clearance
from assay.api.envelope import ApiError
from assay.api.state import AppState
from assay.filestore import FileTooLarge, Stored
from assay.intake.ingest import IngestOrder

MAX_JSON = 4 << 20
SMALL_BODY = 1 << 20  # read whole and parsed in place; larger bodies are streamed to disk
MAX_PARTS = 8


@dataclass(frozen=True)
class IngestRequest:
    """An ingest as the client described it, and which notification queue hears of its outcome."""

    stored: Stored
    name: str
    metadata: Any
    params: dict[str, Any]
    notification_queue: str | None
    notification_threshold: int | None
    generate_alert: bool
    ingest_type: str

    def order(self, user: str, clearance: Clearance) -> IngestOrder:
        """The order of ``user``, whose ``clearance`` bounds the marking they may ask for."""
        return IngestOrder(
            user=user,
            stored=self.stored,
            name=self.name,
            metadata=self.metadata,
            params=self.params,
            queue=self.notification_queue,
            threshold=self.notification_threshold,
            generate_alert=self.generate_alert,
            ingest_type=self.ingest_type,
            clearance=clearance,
        )


@dataclass(frozen=True)
class SubmitRequest:
    """A direct submission as the client described it: the stored file, its name, metadata and params."""

    stored: Stored
    name: str
    metadata: Any
    params: dict[str, Any] | None


@dataclass(frozen=True)
class _Upload:
    """The stored file and its description before the fields are read (the name is checked already)."""

    body: dict[str, Any]
    stored: Stored
    name: str


async def read_ingest_request(request: Request, state: AppState) -> IngestRequest:
    """Everything an ingest says, checked in one pass; the route uses nothing else of the request."""
    upload = await _read_upload(request, state)
    body = upload.body
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "params must be a JSON object")
    return IngestRequest(
        stored=upload.stored,
        name=upload.name,
        metadata=body.get("metadata"),
        params=params,
        notification_queue=_queue_name(body),
        notification_threshold=_optional_int(body, "notification_threshold"),
        generate_alert=bool(body.get("generate_alert", False)),
        ingest_type=str(params.get("type") or body.get("type") or "AL_CLIENT")[:64],
    )


async def read_submit_request(request: Request, state: AppState) -> SubmitRequest:
    """As for an ingest, without notification fields; absent ``params`` are the intake's to default."""
    upload = await _read_upload(request, state)
    params = upload.body.get("params")
    if params is not None and not isinstance(params, dict):
        raise ApiError(400, "params must be a JSON object")
    return SubmitRequest(upload.stored, upload.name, upload.body.get("metadata"), params)


async def _read_upload(request: Request, state: AppState) -> _Upload:
    limit = state.settings.limits.max_file_size
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MAX_JSON:
        raise ApiError(413, f"File too large ({int(declared)} > {limit})")
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        return await _multipart(request, state, limit)
    return await _json_body(request, state, limit)


async def _multipart(request: Request, state: AppState, limit: int) -> _Upload:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= SMALL_BODY:
        return await _small_multipart(request, state, limit)
    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=MAX_JSON)
    except Exception as exc:  # malformed multipart of any kind is the caller's error
        raise ApiError(400, f"could not read the multipart body: {exc}") from None
    try:
        body = _parse_json_text(form.get("json") or "{}")
        upload = form.get("bin")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "the multipart body has no file part named 'bin'")
        stored = await run_in_threadpool(_store_upload, state, upload, limit)
        name = _name(body, upload.filename or stored.sha256)
    finally:
        await form.close()
    return _Upload(body, stored, name)


async def _small_multipart(request: Request, state: AppState, limit: int) -> _Upload:
    """A body that fits in memory (what sensors send almost always): split in place and stored
    on the event loop, without spooling the file part or hopping to a thread."""
    raw = await _read_capped(request, SMALL_BODY)
    parts = _split_multipart(raw, _boundary(request.headers.get("content-type", "")))
    body = _parse_json_text(parts["json"][1].decode("utf-8", "replace") if "json" in parts else "{}")
    if "bin" not in parts or parts["bin"][0] is None:
        raise ApiError(400, "the multipart body has no file part named 'bin'")
    filename, data = parts["bin"]
    if not data:
        raise ApiError(400, "File empty. Ingestion failed")
    if len(data) > limit:
        raise ApiError(413, f"File too large ({len(data)} > {limit})")
    stored = state.store.put_bytes(data)
    return _Upload(body, stored, _name(body, filename or stored.sha256))


async def _read_capped(request: Request, cap: int) -> bytes:
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > cap:
                raise ApiError(400, "the body is longer than its Content-Length")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client went away before sending the whole body") from None
    return b"".join(chunks)


def _boundary(content_type: str) -> bytes:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "the multipart Content-Type names no usable boundary")
    return boundary


def _split_multipart(raw: bytes, boundary: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Parts of a ``multipart/form-data`` body by field name: (filename or None, content).

    The boundary cannot occur inside a part (RFC 2046), so splitting on it is exact.
    """
    pieces = (b"\r\n" + raw).split(b"\r\n--" + boundary)
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        raise ApiError(400, "could not read the multipart body: it does not end with its closing boundary")
    if len(pieces) > MAX_PARTS + 2:
        raise ApiError(400, f"could not read the multipart body: more than {MAX_PARTS} parts")
    parts: dict[str, tuple[str | None, bytes]] = {}
    for piece in pieces[1:-1]:
        head_end = piece.find(b"\r\n\r\n")
        if head_end < 0:
            raise ApiError(400, "could not read the multipart body: a part has no end of headers")
        name, filename = _disposition(piece[:head_end])
        parts.setdefault(name, (filename, piece[head_end + 4 :]))
    return parts


def _disposition(head: bytes) -> tuple[str, str | None]:
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            _, options = parse_options_header(value.strip())
            if b"name" in options:
                filename = options.get(b"filename")
                return options[b"name"].decode("utf-8", "replace"), (
                    None if filename is None else filename.decode("utf-8", "replace")
                )
    raise ApiError(400, "could not read the multipart body: a part has no Content-Disposition name")


def _store_upload(state: AppState, upload: UploadFile, limit: int) -> Stored:
    upload.file.seek(0)
    try:
        stored = state.store.put_stream(upload.file, limit)
    except FileTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    if stored.size == 0:
        raise ApiError(400, "File empty. Ingestion failed")
    return stored


async def _json_body(request: Request, state: AppState, limit: int) -> _Upload:
    raw = await request.body()
    if len(raw) > limit * 2 + MAX_JSON:
        raise ApiError(413, f"File too large ({len(raw)} > {limit})")
    body = _parse_json_text(raw.decode("utf-8", "replace") or "{}")
    if body.get("url"):
        raise ApiError(400, "this server does not fetch URLs; send the file itself or the sha256 of a stored file")
    data = _inline_bytes(body)
    if data is not None:
        if not data:
            raise ApiError(400, "File empty. Ingestion failed")
        if len(data) > limit:
            raise ApiError(413, f"File too large ({len(data)} > {limit})")
        stored = await run_in_threadpool(state.store.put_bytes, data)
        return _Upload(body, stored, _name(body, stored.sha256))
    sha256 = str(body.get("sha256", "")).lower()
    if not sha256:
        raise ApiError(
            400, "send a file: a multipart part 'bin', or 'sha256', 'plaintext' or 'base64' in the JSON body"
        )
    if not state.store.exists(sha256):
        raise ApiError(404, f"File {sha256} not found in the file store")
    size = state.store.path(sha256).stat().st_size
    if size > limit:
        raise ApiError(413, f"File too large ({size} > {limit})")
    stored = await run_in_threadpool(state.store.describe, sha256)
    return _Upload(body, stored, _name(body, sha256))


def _inline_bytes(body: dict[str, Any]) -> bytes | None:
    if "plaintext" in body:
        return str(body["plaintext"]).encode()
    if "base64" in body:
        try:
            return base64.b64decode(str(body["base64"]), validate=True)
        except binascii.Error:
            raise ApiError(400, "base64 is not valid base64") from None
    return None


def _parse_json_text(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ApiError(400, "the 'json' part must be text")
    try:
        value = fastjson.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"the JSON description is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the JSON description must be an object")
    return value


def _name(body: dict[str, Any], fallback: str) -> str:
    name = body.get("name") or fallback
    if not isinstance(name, str):
        raise ApiError(400, "name must be a string")
    return name[:1024]


def _queue_name(body: dict[str, Any]) -> str | None:
    queue = body.get("notification_queue")
    if queue in (None, ""):
        return None
    if not isinstance(queue, str) or len(queue) > 256:
        raise ApiError(400, "notification_queue must be a string of at most 256 characters")
    return queue


def _optional_int(body: dict[str, Any], key: str) -> int | None:
    """A whole number that fits the 32-bit column it is stored in, or None when absent."""
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ApiError(400, f"{key} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise ApiError(400, f"{key} must be a whole number") from None
    if not -(2**31) <= number < 2**31:
        raise ApiError(400, f"{key} must be a 32-bit whole number")
    return number
