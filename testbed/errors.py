"""Errors of the sandbox tooling; each message says what to do next."""

from __future__ import annotations


class SandboxError(Exception):
    """Something the operator must fix; the message says what."""


class SandboxBusy(SandboxError):
    """Someone else is using the sandbox; the message names them and how to stop them."""
