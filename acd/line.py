"""A queue's line: the callers who may be rung now, in order (smallest key first)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

Place = tuple[float, int, str]  # (key, seq, call_id)


class Line:
    """A sorted list with bisect: O(log n) to find, O(n) memmove to insert, which at the
    sizes of a call-center line (thousands) is cheaper than a balanced tree in Python."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[Place] = []

    def add(self, place: Place) -> None:
        i = bisect_left(self._items, place)
        if i == len(self._items) or self._items[i] != place:
            self._items.insert(i, place)

    def remove(self, place: Place) -> None:
        i = bisect_left(self._items, place)
        if i < len(self._items) and self._items[i] == place:
            del self._items[i]

    def rank(self, place: Place) -> int:
        """How many places come before this one."""
        return bisect_left(self._items, place)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Place]:
        return iter(self._items)
