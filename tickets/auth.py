"""Who may sign in to the ticket platform, and who a bearer token belongs to.

Departments (承办单位) and users are managed here; passwords are argon2 hashes; a token is
random and only its SHA-256 is stored. Every function takes the session and `now` (aware
UTC) from its caller: nothing here reads a clock or commits, so a caller does one piece of
work in one transaction and a test chooses the time.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal, cast, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from tickets.models import DepartmentRow, LoginFailureRow, TokenRow, UserRow

Role = Literal["agent", "supervisor", "department", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

MIN_PASSWORD = 10
DEPARTMENT_CODE = re.compile(r"[a-z0-9_-]{1,32}")
USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
AGENT_ID = re.compile(r"[0-9]{2,12}")  # the 工号 agents.yaml gives an agent
PHONE = re.compile(r"\+?[0-9]{0,31}")  # dialled through the trunk as it stands
BAD_CREDENTIALS = "用户名或密码错误"  # one text for every refusal an attacker could learn from

_hasher = PasswordHasher()


class AdminError(ValueError):
    """A change to departments or users that was refused; the text says why and what to do."""


class WeakPassword(AdminError):
    """A password the policy refuses."""


class LoginRefused(Exception):
    """A sign-in that was refused. `retry_after` (seconds) is set while the name is locked.
    Commit the session when catching it: the failure it counts is in there."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    """Who is acting: the signed-in user as the ticket platform sees them."""

    user_id: int
    username: str
    role: Role
    department_id: int | None
    agent_id: str | None
    display_name: str


@dataclass(frozen=True)
class Issued:
    """A token handed out at sign-in: it is shown once and never stored."""

    token: str
    expires: datetime
    principal: Principal


# ---- passwords -------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    # Names that do not exist are checked against this, so that the time a refusal takes
    # does not tell whether a name exists.
    return _hasher.hash(secrets.token_urlsafe(16))


def check_password(username: str, password: str) -> None:
    """Raise WeakPassword with the reason when the policy refuses `password`."""
    if len(password) < MIN_PASSWORD:
        raise WeakPassword(f"密码至少 {MIN_PASSWORD} 个字符（现为 {len(password)} 个）；请换一个更长的密码")
    if password.isdigit():
        raise WeakPassword("密码不能全是数字；请加入字母或符号")
    if password != password.strip() or len(password) > 1024:
        # The sign-in form takes at most 1,024 characters; spaces at the ends are easily lost.
        raise WeakPassword("密码首尾不能有空格，且不超过 1024 个字符")
    if password.strip().lower() == username.strip().lower():
        raise WeakPassword("密码不能与用户名相同；请换一个密码")


# ---- departments -----------------------------------------------------------------------------


def _phone(phone: str) -> str:
    if not PHONE.fullmatch(phone):
        raise AdminError(f"电话 {phone!r} 无效：只写数字（可带开头的 +），例如 057112345678；它经中继直接拨出")
    return phone


def _dept_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise AdminError("部门名称须为 1 到 64 个字符")
    return name


def _department(s: Session, code: str) -> DepartmentRow:
    row = s.scalar(select(DepartmentRow).where(DepartmentRow.code == code))
    if row is None:
        raise AdminError(f"没有代码为 {code!r} 的部门；`hotline dept list` 列出已有部门")
    return row


def _name_taken(s: Session, name: str, but: int | None = None) -> None:
    found = s.scalar(select(DepartmentRow.code).where(DepartmentRow.name == name, DepartmentRow.id != (but or -1)))
    if found is not None:
        raise AdminError(f"部门名称 {name!r} 已被部门 {found!r} 使用；请换一个名称")


def add_department(s: Session, code: str, name: str, phone: str, now: datetime) -> DepartmentRow:
    if not DEPARTMENT_CODE.fullmatch(code):
        raise AdminError(f"部门代码 {code!r} 无效：1 到 32 个小写字母、数字、_ 或 -，例如 housing")
    if s.scalar(select(DepartmentRow.id).where(DepartmentRow.code == code)) is not None:
        raise AdminError(f"部门代码 {code!r} 已存在；请换一个代码，或用 `hotline dept set` 修改它")
    name = _dept_name(name)
    _name_taken(s, name)
    row = DepartmentRow(code=code, name=name, phone=_phone(phone), active=True, created=now)
    s.add(row)
    s.flush()
    return row


def update_department(s: Session, code: str, *, name: str | None = None, phone: str | None = None,
                      active: bool | None = None) -> DepartmentRow:
    """Change what is given. An inactive department's users can no longer sign in or use
    their tokens; reactivating it lets them back."""
    row = _department(s, code)
    if name is not None:
        name = _dept_name(name)
        _name_taken(s, name, but=row.id)
        row.name = name
    if phone is not None:
        row.phone = _phone(phone)
    if active is not None:
        row.active = active
    s.flush()
    return row


def list_departments(s: Session) -> list[DepartmentRow]:
    return list(s.scalars(select(DepartmentRow).order_by(DepartmentRow.code)))


def active_departments(s: Session) -> list[dict[str, Any]]:
    """The departments a ticket may go to, as the pages show them."""
    return [{"id": d.id, "code": d.code, "name": d.name, "phone": d.phone} for d in list_departments(s) if d.active]


# ---- users -----------------------------------------------------------------------------------


def _norm(username: str) -> str:
    # Names are matched case-insensitively, so the limiter cannot be side-stepped by case.
    return username.strip().lower()


def find_user(s: Session, username: str) -> UserRow | None:
    return s.scalar(select(UserRow).where(UserRow.username == _norm(username)))


def get_user(s: Session, username: str) -> UserRow:
    row = find_user(s, username)
    if row is None:
        raise AdminError(f"没有用户 {_norm(username)!r}；`hotline user list` 列出已有用户")
    return row


def _revoke_all(s: Session, user_id: int) -> None:
    s.execute(update(TokenRow).where(TokenRow.user_id == user_id, TokenRow.revoked.is_(False)).values(revoked=True))


def add_user(s: Session, username: str, password: str, role: str, now: datetime, *,
             department_code: str | None = None, agent_id: str | None = None, display_name: str = "") -> UserRow:
    name = _norm(username)
    if not USERNAME.fullmatch(name):
        raise AdminError(f"用户名 {username!r} 无效：1 到 64 个小写字母、数字、_ . -，以字母或数字开头")
    if role not in ROLES:
        raise AdminError(f"角色 {role!r} 无效：可选 {', '.join(ROLES)}")
    if s.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
        raise AdminError(f"用户名 {name!r} 已存在；请换一个，或用 `hotline user passwd` 重设其密码")
    department_id = None
    if role == "department":
        if not department_code:
            raise AdminError("部门用户须指定所属部门（--dept CODE）；`hotline dept list` 列出已有部门")
        dept = _department(s, department_code)
        if not dept.active:
            raise AdminError(f"部门 {department_code!r} 已停用；先用 `hotline dept set {department_code} --active yes`")
        department_id = dept.id
    elif department_code:
        raise AdminError(f"只有 department 角色的用户属于部门；{role} 用户不要指定 --dept")
    if agent_id is not None:
        if role != "agent":
            raise AdminError(f"只有 agent（坐席）可以有工号；{role} 用户不要指定 --agent-id")
        if not AGENT_ID.fullmatch(agent_id):
            raise AdminError(f"工号 {agent_id!r} 无效：2 到 12 位数字，与 agents.yaml 中的 id 一致")
        holder = s.scalar(select(UserRow.username).where(UserRow.agent_id == agent_id))
        if holder is not None:
            raise AdminError(f"工号 {agent_id} 已属于用户 {holder!r}；一个工号只对应一个用户")
    display_name = display_name.strip()
    if len(display_name) > 64:
        raise AdminError("显示名最多 64 个字符")
    check_password(name, password)
    row = UserRow(username=name, display_name=display_name, role=role, department_id=department_id,
                  agent_id=agent_id, password_hash=hash_password(password), disabled=False,
                  created=now, password_changed=now)
    s.add(row)
    s.flush()
    return row


def set_password(s: Session, username: str, password: str, now: datetime) -> UserRow:
    """Set a new password. Every token of the user stops working, and the name's failed
    sign-ins are forgotten: a user locked out and given a new password may sign in at once."""
    row = get_user(s, username)
    check_password(row.username, password)
    row.password_hash = hash_password(password)
    row.password_changed = now
    _revoke_all(s, row.id)
    s.execute(delete(LoginFailureRow).where(LoginFailureRow.username == row.username))
    s.flush()
    return row


def disable_user(s: Session, username: str) -> UserRow:
    """Stop a user signing in; their tokens are revoked at once."""
    row = get_user(s, username)
    row.disabled = True
    _revoke_all(s, row.id)
    s.flush()
    return row


def enable_user(s: Session, username: str) -> UserRow:
    row = get_user(s, username)
    row.disabled = False
    s.flush()
    return row


def list_users(s: Session) -> list[UserRow]:
    return list(s.scalars(select(UserRow).order_by(UserRow.username)))


def _principal(row: UserRow) -> Principal:
    return Principal(user_id=row.id, username=row.username, role=cast(Role, row.role),
                     department_id=row.department_id, agent_id=row.agent_id, display_name=row.display_name)


def _may_act(s: Session, row: UserRow) -> bool:
    if row.disabled or row.role not in ROLES:
        return False
    if row.role == "department":
        dept = s.get(DepartmentRow, row.department_id) if row.department_id is not None else None
        return dept is not None and dept.active
    return True


# ---- sign-in and tokens ----------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite gives times back naive


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _locked_until(s: Session, name: str, now: datetime, max_failures: int, window: timedelta,
                  lockout: timedelta, but: int = 0) -> datetime | None:
    """When the name may try again, if `max_failures` failures fell within one `window` and
    the newest is less than `lockout` ago. Refusals while locked are not counted, so the
    lock ends on time even if someone keeps trying."""
    recent = [_aware(at) for at in s.scalars(
        select(LoginFailureRow.at).where(LoginFailureRow.username == name, LoginFailureRow.id != but)
        .order_by(LoginFailureRow.at.desc()).limit(max_failures))]
    if len(recent) < max_failures or recent[0] - recent[-1] > window:
        return None
    until = recent[0] + lockout
    return until if until > now else None


def _locked(until: datetime, now: datetime) -> LoginRefused:
    wait = max(1.0, (until - now).total_seconds())
    return LoginRefused(f"登录失败次数过多，请 {math.ceil(wait / 60)} 分钟后再试", retry_after=wait)


def login(s: Session, username: str, password: str, now: datetime, *, source: str, ttl: timedelta,
          max_failures: int, window: timedelta, lockout: timedelta) -> Issued:
    """Check the password and issue a token, or raise LoginRefused.

    Unknown names, wrong passwords, disabled users and users of an inactive department get
    the same refusal after the same work (an argon2 verify), and count towards the lock.
    The attempt is committed as a failure (in a transaction of its own) before the password
    is checked; a success deletes it in the session `s`, which the caller commits."""
    name = _norm(username)[:64]  # the failure table's column; longer names cannot exist anyway
    # The attempt counts as a failure from before the slow check, committed at once in a short
    # transaction of its own: parallel guesses see each other (sending them at once cannot beat
    # the limit), and no write lock is held during argon2's ~0.4 s (on SQLite it would stall
    # every other writer, the call records among them). A success deletes it again.
    with Session(s.get_bind()) as w, w.begin():
        # Failures that can no longer take part in a lock are dropped: the table stays small.
        w.execute(delete(LoginFailureRow).where(LoginFailureRow.at < now - window - lockout))
        until = _locked_until(w, name, now, max_failures, window, lockout)
        attempt = 0
        if until is None:
            failure = LoginFailureRow(username=name, at=now, source=source[:64])
            w.add(failure)
            w.flush()
            attempt = failure.id
    if until is not None:
        raise _locked(until, now)
    # Guesses sent at the same moment were each let through the check above before the others
    # committed: looked at again with them all in (this one aside), the name may be locked now.
    if _locked_until(s, name, now, max_failures, window, lockout, but=attempt) is not None:
        # This attempt never reached the check: it must not count (nor re-arm the lock).
        with Session(s.get_bind()) as w, w.begin():
            w.execute(delete(LoginFailureRow).where(LoginFailureRow.id == attempt))
            until = _locked_until(w, name, now, max_failures, window, lockout)
        raise _locked(until or now + lockout, now)
    row = s.scalar(select(UserRow).where(UserRow.username == name))
    good = verify_password(row.password_hash if row else _dummy_hash(), password)
    if row is None or not good or not _may_act(s, row):
        raise LoginRefused(BAD_CREDENTIALS)
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    s.execute(delete(LoginFailureRow).where(LoginFailureRow.username == name))
    s.execute(delete(TokenRow).where(TokenRow.user_id == row.id, TokenRow.expires < now))  # the user's dead ones
    token = secrets.token_urlsafe(32)
    expires = now + ttl
    s.add(TokenRow(token_hash=_token_hash(token), user_id=row.id, created=now, expires=expires, revoked=False))
    s.flush()
    return Issued(token=token, expires=expires, principal=_principal(row))


def authenticate(s: Session, token: str, now: datetime) -> Principal | None:
    """The principal a bearer token stands for, or None: unknown, expired or revoked token,
    disabled user, or a department user whose department is inactive."""
    row = s.get(TokenRow, _token_hash(token))
    if row is None or row.revoked or _aware(row.expires) <= now:
        return None
    user = s.get(UserRow, row.user_id)
    if user is None or not _may_act(s, user):
        return None
    return _principal(user)


def logout(s: Session, token: str) -> bool:
    """Revoke a token; False if it was unknown or already revoked."""
    result = s.execute(update(TokenRow).where(TokenRow.token_hash == _token_hash(token), TokenRow.revoked.is_(False))
                       .values(revoked=True))
    return bool(getattr(result, "rowcount", 0))


def failures(s: Session, username: str) -> int:
    """How many failed sign-ins of this name are on record (for the admin and the tests)."""
    return int(s.scalar(select(func.count()).select_from(LoginFailureRow)
                        .where(LoginFailureRow.username == _norm(username))) or 0)
