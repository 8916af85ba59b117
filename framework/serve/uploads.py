"""A predict request's images: multipart ``file`` fields or base64 JSON, within the limits, decoded.

Nothing here opens a path or a URL: an upload is bytes, decoded in memory by
:func:`tlf.data.reading.decode_rgb` (the decoder training and ``tlf predict`` use), which
checks the declared size against ``max_pixels`` before decoding anything.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request

from ..data.reading import UnreadableImage, decode_rgb
from .errors import ClientError
from .settings import ServeSettings

FIELD = "file"  # multipart field name of each image
JSON_FIELD = "images"  # JSON: {"images": ["<base64>", ...]}


@dataclass
class Upload:
    """One image as sent: its name (file name, or its position) and its bytes."""

    name: str
    data: bytes


async def read_uploads(request: Request, settings: ServeSettings) -> list[Upload]:
    """The request's images, in order; a :class:`ClientError` for anything else."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        uploads = await _multipart(request, settings)
    elif kind == "application/json":
        uploads = _base64_json(await request.body())
    else:
        raise ClientError(415, "unsupported_media_type", f"content type {kind or 'none'!r} is not accepted; "
                          f"send multipart/form-data with '{FIELD}' fields or JSON {{\"{JSON_FIELD}\": [base64, ...]}}")
    if not uploads:
        raise ClientError(422, "no_image", f"the request holds no image; send one or more '{FIELD}' fields")
    if len(uploads) > settings.max_files:
        raise ClientError(413, "too_many_images", f"{len(uploads)} images in one request; the limit is {settings.max_files}")
    return uploads


async def _multipart(request: Request, settings: ServeSettings) -> list[Upload]:
    try:
        form = await request.form(max_files=settings.max_files + 1, max_fields=settings.max_files + 8)
    except ClientError:
        raise
    except Exception as exc:  # starlette's MultiPartException and the parser's errors: a malformed body
        raise ClientError(400, "bad_multipart", f"malformed multipart body: {exc}") from None
    try:
        unknown = sorted({key for key in form.keys() if key != FIELD})
        if unknown:
            raise ClientError(422, "wrong_field", f"unknown field(s) {', '.join(map(repr, unknown))}; "
                              f"send each image as a '{FIELD}' field (top_k and model are query parameters)")
        uploads = []
        for i, value in enumerate(form.getlist(FIELD)):
            if not isinstance(value, UploadFile):
                raise ClientError(422, "wrong_field", f"field '{FIELD}' #{i} is text, not a file upload")
            uploads.append(Upload(value.filename or f"#{i}", await value.read()))
        return uploads
    finally:
        await form.close()


def _base64_json(body: bytes) -> list[Upload]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(400, "bad_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get(JSON_FIELD), list) or set(data) != {JSON_FIELD}:
        raise ClientError(422, "wrong_field", f"expected a JSON object {{\"{JSON_FIELD}\": [base64 string, ...]}}")
    uploads = []
    for i, text in enumerate(data[JSON_FIELD]):
        if not isinstance(text, str):
            raise ClientError(422, "wrong_field", f"{JSON_FIELD}[{i}] is not a base64 string")
        try:
            uploads.append(Upload(f"#{i}", base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise ClientError(422, "bad_base64", f"{JSON_FIELD}[{i}] is not valid base64") from None
    return uploads


def decode(upload: Upload, max_pixels: int) -> np.ndarray:
    """HxWx3 uint8 RGB, or a 422 :class:`ClientError` naming the image and why."""
    try:
        return decode_rgb(upload.data, upload.name, max_pixels)
    except UnreadableImage as exc:
        raise ClientError(422, "bad_image", f"image {upload.name!r}: {exc.reason}") from None
