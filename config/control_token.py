"""The control API's bearer token: the engine creates it, `hotline` clients on the host read it.

Whoever can read the token file can pause agents and reload the configuration, so the file
is 0600 in a 0750 folder, and the engine refuses to start with a file others can read.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import stat
import tempfile
from pathlib import Path

TOKEN_BYTES = 32
# token_urlsafe(32) gives 43 characters; a hand-made token must be as long and header-safe.
TOKEN = re.compile(r"[A-Za-z0-9_-]{43,512}")


class TokenError(Exception):
    """A token file that cannot be used; the message says what to do."""


def load_or_create_token(path: Path) -> str:
    """The engine's side: read the token, or create one at the first start."""
    try:
        return _read_private(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a folder in its place, no permission, ...
        raise TokenError(f"cannot read the control token {path}: {exc.strerror or exc}") from None
    try:
        _make_folder(path.parent)
        _create(path, secrets.token_urlsafe(TOKEN_BYTES))
    except OSError as exc:
        raise TokenError(f"cannot create the control token {path}: {exc.strerror or exc}; run the engine as "
                         f"the user that owns {path.parent}, or set http.token_file") from None
    return _read_private(path)  # ours, or the one another process created a moment earlier


def read_token(path: Path) -> str:
    """A client's side (`hotline reload`): the token of the engine running on this host."""
    try:
        with path.open("rb") as fh:
            text = fh.read(1024).decode("ascii", errors="replace")
    except OSError:
        raise TokenError(f"no control token at {path}; is the engine running on this host, "
                         "and are you root?") from None
    return _checked(path, text)


def authorized(header: str | None, token: str) -> bool:
    """Whether an Authorization header value is `Bearer <token>` (compared in constant time)."""
    scheme, _, value = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode("utf-8", "replace"), token.encode("utf-8"))


def _read_private(path: Path) -> str:
    # Not through a link, not blocking on a FIFO someone put there, and only a file of the
    # engine's own user: a token planted by another user would hand them the control API.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        mode = info.st_mode
        if not stat.S_ISREG(mode):
            raise TokenError(f"{path} is not a regular file; remove it, and the engine creates a token there")
        if info.st_uid != os.geteuid():
            raise TokenError(f"{path} belongs to user {info.st_uid}, not to the engine's user {os.geteuid()}; "
                             f"remove it (the engine creates a new one) or chown it")
        if mode & 0o077:
            raise TokenError(f"{path} can be read or changed by group or others (mode {mode & 0o777:04o}); "
                             f"chmod 600 {path}")
        text = fh.read(1024).decode("ascii", errors="replace")
    return _checked(path, text)


def _checked(path: Path, text: str) -> str:
    token = text.strip()
    if not TOKEN.fullmatch(token):
        raise TokenError(f"{path} does not hold a control token (43 or more of A-Z a-z 0-9 - _); delete it and "
                         "restart the engine to create a new one")
    return token


def _make_folder(folder: Path) -> None:
    if folder.is_dir():
        return  # an existing folder is the admin's to set; the file itself is 0600
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o750)  # mkdir's mode is cut by the umask; say it outright


def _create(path: Path, token: str) -> None:
    # Written whole into a 0600 temporary file, then linked into place: a reader never
    # sees half a token, and a token another process created first is never replaced.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.write(fd, f"{token}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
