"""Rebuilding the picture from Asterisk's snapshots (delivered in AMI stream order)."""

from __future__ import annotations

from acd.events import ChannelsSnapshot, DeviceChanged, DevicesSnapshot, LinkLost, SnapshotCall, Where
from tests.unit.world import World, chan, rings


def resync(w: World, *callers: SnapshotCall, devices: tuple[DeviceChanged, ...] = (), at: float) -> list[object]:
    """The link drops and comes back: both halves of the snapshot, in stream order."""
    return [*w.feed(LinkLost(), at), *w.feed(ChannelsSnapshot(callers), at), *w.feed(DevicesSnapshot(devices), at)]


def test_an_adopted_caller_in_the_hold_loop_is_rung_by_a_free_agent() -> None:
    """Found while porting: `_reconcile` put a caller in its line only when its state
    changed, and a freshly adopted call is already IN_LINE, so it was never in the line:
    free agents were never offered it, and it only ever left at max_wait."""
    w = World(agents=("1001",))
    out = resync(w, SnapshotCall("c9", chan("c9"), Where.HOLD, age=3, queue="main"),
                 devices=(DeviceChanged("1001", True, False),), at=1000)
    assert rings(out) == [("c9", "1001")]
