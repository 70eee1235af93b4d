"""AMI framing and parsing on bytes, into typed messages.

panoramisk 1.4 decodes every TCP chunk on its own with errors='ignore', so a UTF-8
character split across two reads ("王" as e7 8e | 8b) silently vanishes. We frame on
bytes first and decode only whole messages; a message that is not valid UTF-8 is
decoded with replacement characters and counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

BANNER = b"Asterisk Call Manager/"
SEP = b"\r\n\r\n"
MAX_MESSAGE = 1 << 20  # an AMI message is a few KB; a megabyte without a blank line is garbage


@dataclass(frozen=True)
class AmiMessage(Mapping[str, str]):
    """One AMI message. As a mapping it gives the first value of each header; headers that
    Asterisk repeats (`Variable:` lines of a Status event) are all in `pairs`."""

    pairs: tuple[tuple[str, str], ...]
    _first: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        first: dict[str, str] = {}
        for key, value in self.pairs:
            first.setdefault(key, value)
        object.__setattr__(self, "_first", first)

    @classmethod
    def of(cls, fields: Mapping[str, str]) -> AmiMessage:
        return cls(tuple(fields.items()))

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    @property
    def event(self) -> str | None:
        return self._first.get("Event")

    @property
    def action_id(self) -> str | None:
        return self._first.get("ActionID")

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]

    def variables(self) -> dict[str, str]:
        """Channel variables reported as `Variable: NAME=value` (Status with Variables:)."""
        out: dict[str, str] = {}
        for line in self.all("Variable"):
            name, sep, value = line.partition("=")
            if sep:
                out[name] = value
        return out


def parse(text: str) -> AmiMessage | None:
    """'Key: value' lines -> message; None unless it has an Event or a Response."""
    pairs = []
    for line in text.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep and key and " " not in key:
            pairs.append((key, value[1:] if value.startswith(" ") else value))
    message = AmiMessage(tuple(pairs))
    return message if ("Event" in message or "Response" in message) else None


@dataclass
class AmiFramer:
    buffer: bytearray = field(default_factory=bytearray)
    version: str | None = None
    bad_utf8: int = 0
    malformed: int = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        self.buffer += data
        out: list[AmiMessage] = []
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

    def _parse(self, raw: bytes) -> AmiMessage | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_utf8 += 1
            text = raw.decode("utf-8", "replace")
        text = text.strip("\r\n")
        if not text:
            return None
        message = parse(text)
        if message is None:
            self.malformed += 1
        return message
