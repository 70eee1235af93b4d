"""The engine's side of the dialplan contract (cti/dialplan.py) matches the dialplan it renders."""

from __future__ import annotations

import re

import pytest

from acd.model import LeaveReason
from config.loader import load
from cti import dialplan
from cti.asterisk_conf import render


@pytest.fixture(scope="module")
def extensions() -> str:
    return render(load(None))["extensions.conf"]


def test_every_context_the_engine_names_is_in_the_dialplan(extensions: str) -> None:
    for context in (dialplan.INBOUND, dialplan.HOLD, dialplan.CONNECT, dialplan.LEAVE, dialplan.EXTERNAL,
                    dialplan.DONE, dialplan.ANSWERED, dialplan.ENDED):
        assert f"[{context}]" in extensions, context


def test_every_variable_a_restarted_engine_reads_back_is_set_by_the_dialplan(extensions: str) -> None:
    set_there = set(re.findall(r"Set\((?:__|MASTER_CHANNEL\()?([A-Z_]+)\)?=", extensions))
    # QUEUE, OFFERED and PATH are also kept current by the engine (TagCaller); the rest only by the dialplan.
    for name in dialplan.SNAPSHOT_VARIABLES:
        assert name in set_there, name


def test_the_hangup_handler_writes_every_variable_into_the_account(extensions: str) -> None:
    (handler,) = re.findall(r"CELGenUserEvent\(HOTLINE_END,([^)]*)\)", extensions)
    for name in (dialplan.QUEUE, dialplan.OFFERED, dialplan.PATH, dialplan.JOINED_AT, dialplan.ANSWERED_AT,
                 dialplan.AGENT, dialplan.FALLBACK, dialplan.LEAVE_REASON, dialplan.PRIORITY, dialplan.PRES,
                 dialplan.FROM, dialplan.RECORDING):
        assert f"${{{name}}}" in handler, name
    assert handler.endswith("rec=${HOTLINE_REC}")  # the recording path may hold '&': it comes last
    assert f"hangup_handler_push)={dialplan.ENDED},s,1" in extensions


def test_every_leave_reason_has_its_place_and_lands_on_the_redirect_priority(extensions: str) -> None:
    for reason in LeaveReason:
        context, exten = dialplan.leave_target(reason, "057112345")
        if context == dialplan.LEAVE:
            assert f"exten => {exten},1,NoOp" in extensions
            assert f" same => {dialplan.REDIRECT_PRIORITY},Set({dialplan.LEAVE_REASON}={exten})" in extensions
        else:
            assert context == dialplan.EXTERNAL


def test_the_ring_extension_carries_the_attempt_back(extensions: str) -> None:
    single, dial = dialplan.ring_target(("1001",), 15, 7)
    assert (single, dial) == ("1001*15*7", None)
    group, dial = dialplan.ring_target(("1001", "1002"), 14.6, 8)
    assert (group, dial) == ("all*15*8", "PJSIP/agent1001&PJSIP/agent1002")
    assert dialplan.attempt_of(dialplan.CONNECT, single) == 7
    assert dialplan.attempt_of(dialplan.CONNECT, group) == 8
    assert dialplan.attempt_of(dialplan.HOLD, "main") is None  # the fallback's Dial
    assert f" same => {dialplan.REDIRECT_PRIORITY},Dial(PJSIP/agent${{CUT(EXTEN,*,1)}}" in extensions
    assert f" same => {dialplan.REDIRECT_PRIORITY},Dial(${{{dialplan.DIAL}}}" in extensions


def test_the_user_events_the_engine_decodes_are_raised(extensions: str) -> None:
    for event in (dialplan.JOIN_EVENT, dialplan.PARKED_EVENT, dialplan.RECORDING_EVENT, dialplan.AGENT_EVENT):
        assert f"UserEvent({event}," in extensions, event


def test_the_fallback_marks_the_call_and_the_heartbeat_is_the_engines(extensions: str) -> None:
    assert f"(fallback),Set({dialplan.FALLBACK}=1)" in extensions
    assert f"${{{dialplan.ENGINE_SEEN}}}" in extensions


def test_the_callback_context_is_there_with_its_hangup_handler_and_event(extensions: str) -> None:
    """A callback's Originate lands in CALLBACK at s,1 (on the agent's phone); its hangup
    handler raises CALLBACK_EVENT whatever ends the leg; the citizen's answer is recorded."""
    for context in (dialplan.CALLBACK, dialplan.CALLBACK_ANSWERED):
        assert f"[{context}]" in extensions, context
    block = extensions.split(f"[{dialplan.CALLBACK}]", 1)[1].split("\n[", 1)[0]
    assert f"exten => s,1,Set(CHANNEL(hangup_handler_push)={dialplan.CALLBACK},ended,1)" in block
    assert f"exten => ended,1,UserEvent({dialplan.CALLBACK_EVENT},Status: ${{DIALSTATUS}}," in block
    assert f"${{{dialplan.CB_ANSWERED_AT}}}" in block
    # The number and the ring time reach Dial as digits only, whatever was set.
    assert f"Dial(PJSIP/${{FILTER(0123456789,${{{dialplan.CB_NUMBER}}})}}@carrier," in block
    assert f"${{FILTER(0123456789,${{{dialplan.CB_TIMEOUT}}})}}" in block
    assert f"U({dialplan.CALLBACK_ANSWERED})" in block
    assert "\nexten => failed," not in block  # Asterisk would run it for an Originate not taken
    answered = extensions.split(f"[{dialplan.CALLBACK_ANSWERED}]", 1)[1].split("\n[", 1)[0]
    assert f"Set(MASTER_CHANNEL({dialplan.CB_ANSWERED_AT})=" in answered
    assert f"UserEvent({dialplan.RECORDING_EVENT}," in answered and "MixMonitor(" in answered


def test_a_callback_call_id_is_a_valid_channel_id_and_names_its_request() -> None:
    call_id = dialplan.callback_call_id("cb-1764000000.42", 3)
    assert call_id == "cb-1764000000.42-3" and dialplan.is_callback_call(call_id)
    assert dialplan.callback_request_of(call_id) == "cb-1764000000.42"
    assert not dialplan.is_callback_call("1764000000.42")  # a citizen's own call
    assert len(dialplan.callback_call_id("cb-" + "x" * 64, 9999)) <= 149  # Asterisk's ChannelId limit
