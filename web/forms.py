"""Reading a posted form: one place that turns a body aiohttp cannot decode into a 400.

Why a module of its own: web/app.py imports the page modules (desk, wall, dept), and they
all read forms; importing this from web/app.py there would be a cycle.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from multidict import MultiDictProxy

FORM_ENCODING = "表单编码错误 (the form must be UTF-8)"


class FormEncodingError(web.HTTPBadRequest):
    """A form body that is not UTF-8, not a form at all, or not what its Content-Encoding says.
    The pages' guard answers it as plain text with FORM_ENCODING, not as the ticket API's JSON
    error."""

    def __init__(self) -> None:
        super().__init__(text=FORM_ENCODING)


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """`request.post()`, except that a body it cannot decode is the sender's error (400), not
    the engine's (aiohttp raises UnicodeDecodeError for raw non-UTF-8 bytes, ValueError for
    a malformed multipart body, LookupError for a charset nobody knows, and RequestPayloadError
    or HttpProcessingError when the body does not inflate as its Content-Encoding says: plain
    bytes sent as gzip, say; tickets/api.py `_body` refuses the same)."""
    try:
        return await request.post()
    except (ValueError, LookupError, RequestPayloadError, HttpProcessingError):  # UnicodeDecodeError is a ValueError
        raise FormEncodingError() from None
