"""AMI framing on bytes.

panoramisk 1.4 decodes every TCP chunk on its own with errors='ignore', so a
UTF-8 character split across two reads ("王" as e7 8e | 8b) silently vanishes.
We frame on bytes first and decode only whole messages; a message that is not
valid UTF-8 is decoded with replacement characters and counted, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from panoramisk.message import Message

BANNER = b"Asterisk Call Manager/"
SEP = b"\r\n\r\n"
MAX_MESSAGE = 1 << 20  # an AMI message is a few KB; a megabyte without a blank line is garbage


@dataclass
class AmiFramer:
    buffer: bytearray = field(default_factory=bytearray)
    version: str | None = None
    bad_utf8: int = 0
    malformed: int = 0

    def feed(self, data: bytes) -> list[Message]:
        self.buffer += data
        out: list[Message] = []
        if self.version is None and self.buffer.startswith(BANNER[: len(self.buffer)]):
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return out
            self.version = self.buffer[len(BANNER) : end].decode("ascii", "replace")
            del self.buffer[: end + 2]
        while True:
            end = self.buffer.find(SEP)
            if end < 0:
                if len(self.buffer) > MAX_MESSAGE:
                    self.malformed += 1
                    self.buffer.clear()
                return out
            raw = bytes(self.buffer[:end])
            del self.buffer[: end + len(SEP)]
            message = self._parse(raw)
            if message is not None:
                out.append(message)

    def _parse(self, raw: bytes) -> Message | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_utf8 += 1
            text = raw.decode("utf-8", "replace")
        text = text.strip()
        if not text:
            return None
        message = Message.from_line(text)
        if message is None:
            self.malformed += 1
        return message
