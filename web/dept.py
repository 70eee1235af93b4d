"""Placeholder: the dept page (being written)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from acd.commands import Command

if TYPE_CHECKING:
    from web.app import Web


class DeptPage:
    def __init__(self, w: Web) -> None:
        self.w = w

    def routes(self, router: web.UrlDispatcher) -> None:
        pass

    def on_command(self, cmd: Command, now: float) -> None:
        pass

    def tick(self, now: float) -> None:
        pass
