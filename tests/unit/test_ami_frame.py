"""Framing AMI bytes: whole messages only, UTF-8 intact however TCP splits it."""

from __future__ import annotations

from cti.ami_frame import AmiFramer

JOIN = (
    "Event: UserEvent\r\nChannel: PJSIP/carrier-00000001\r\nCallerIDNum: 13800000000\r\n"
    "CallerIDName: 王小明\r\nLinkedid: 1764000000.1\r\nUserEvent: HotlineJoin\r\nQueue: main\r\n\r\n"
).encode()


def test_a_chinese_caller_name_split_at_every_byte_offset_arrives_whole() -> None:
    for cut in range(1, len(JOIN)):
        framer = AmiFramer()
        messages = framer.feed(JOIN[:cut]) + framer.feed(JOIN[cut:])
        assert [m["CallerIDName"] for m in messages] == ["王小明"], cut
        assert framer.bad_utf8 == 0


def test_byte_by_byte_delivery_yields_every_message_in_order() -> None:
    framer = AmiFramer()
    stream = b"Asterisk Call Manager/11.0.0\r\n" + JOIN + b"Event: Hangup\r\nLinkedid: 1\r\nChannel: x\r\n\r\n"
    out = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert framer.version == "11.0.0"
    assert [m["Event"] for m in out] == ["UserEvent", "Hangup"]


def test_invalid_utf8_is_replaced_and_counted_not_dropped() -> None:
    framer = AmiFramer()
    (msg,) = framer.feed(b"Event: UserEvent\r\nCallerIDName: \xff\xfeX\r\n\r\n")
    assert msg["CallerIDName"].endswith("X")
    assert framer.bad_utf8 == 1


def test_a_frame_without_event_or_response_is_counted_as_malformed() -> None:
    framer = AmiFramer()
    assert framer.feed(b"garbage line\r\nmore\r\n\r\nEvent: Hangup\r\n\r\n")[0]["Event"] == "Hangup"
    assert framer.malformed == 1


def test_a_runaway_message_is_discarded_instead_of_growing_forever() -> None:
    framer = AmiFramer()
    framer.feed(b"Event: X\r\n" + b"A" * (1 << 20) + b"B")
    assert framer.malformed == 1
    assert framer.feed(b"\r\n\r\nEvent: Hangup\r\n\r\n")[-1]["Event"] == "Hangup"
