"""Sign-in to the ticket platform: passwords, tokens, the failure limiter, departments and users.
Every test runs on SQLite and on PostgreSQL (the `db` fixture)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from tickets import auth
from tickets.auth import AdminError, Issued, LoginRefused, WeakPassword
from tickets.models import LoginFailureRow, TokenRow, UserRow

T0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
TTL = timedelta(hours=8)
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
GOOD = "correct-horse-9"


PRODUCTION_HASHER = auth._hasher




@contextmanager
def tx(db: Engine) -> Iterator[Session]:
    with Session(db) as s, s.begin():
        yield s


def sign_in(db: Engine, username: str, password: str, now: datetime) -> Issued:
    """As the ticket API does it: the failure a refusal counts is committed, not rolled back."""
    with Session(db) as s:
        try:
            issued = auth.login(s, username, password, now, source="10.1.2.3", ttl=TTL, max_failures=5,
                                window=WINDOW, lockout=LOCKOUT)
        finally:
            s.commit()
    return issued


def refusal(db: Engine, username: str, password: str, now: datetime) -> LoginRefused:
    with pytest.raises(LoginRefused) as refused:
        sign_in(db, username, password, now)
    return refused.value


def who(db: Engine, token: str, now: datetime) -> auth.Principal | None:
    with tx(db) as s:
        return auth.authenticate(s, token, now)


@pytest.fixture
def housing(db: Engine) -> Engine:
    """A store with department housing, its user zhangsan, and agent li (工号 1001)."""
    with tx(db) as s:
        auth.add_department(s, "housing", "市住建局", "057187001234", T0)
        auth.add_user(s, "zhangsan", GOOD, "department", T0, department_code="housing", display_name="张三")
        auth.add_user(s, "li", GOOD, "agent", T0, agent_id="1001", display_name="李四")
    return db


# ---- passwords ------------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes_that_verify(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "_hasher", PRODUCTION_HASHER)
    with tx(db) as s:
        auth.add_user(s, "zhangsan", GOOD, "admin", T0)
    with tx(db) as s:
        stored = s.scalars(select(UserRow.password_hash).where(UserRow.username == "zhangsan")).one()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")  # argon2-cffi's defaults (RFC 9106, low memory)
    assert GOOD not in stored
    assert auth.verify_password(stored, GOOD)
    assert not auth.verify_password(stored, GOOD + "x")
    assert not auth.verify_password("not a hash", GOOD)


@pytest.mark.parametrize(("password", "reason"), [
    ("short-pw1", "至少 10 个字符"),
    ("13800138000", "不能全是数字"),
    ("WangWu2025", "不能与用户名相同"),
])
def test_weak_passwords_are_refused_with_the_reason(db: Engine, password: str, reason: str) -> None:
    with pytest.raises(WeakPassword, match=reason), tx(db) as s:
        auth.add_user(s, "wangwu2025", password, "supervisor", T0)
    with tx(db) as s:
        assert auth.find_user(s, "wangwu2025") is None


def test_a_login_issues_a_token_that_authenticates_until_its_ttl(housing: Engine) -> None:
    issued = sign_in(housing, "zhangsan", GOOD, T0)
    assert issued.expires == T0 + TTL
    me = who(housing, issued.token, T0 + TTL - timedelta(seconds=1))
    assert me is not None
    assert (me.username, me.role, me.display_name, me.agent_id) == ("zhangsan", "department", "张三", None)
    assert me == issued.principal
    assert who(housing, issued.token, T0 + TTL) is None
    assert who(housing, "a-token-nobody-was-given", T0) is None


def test_an_agent_signs_in_with_its_agent_id_and_any_case_of_its_name(housing: Engine) -> None:
    me = sign_in(housing, " LI ", GOOD, T0).principal
    assert (me.username, me.role, me.agent_id, me.department_id) == ("li", "agent", "1001", None)


def test_only_the_tokens_sha256_is_stored(housing: Engine) -> None:
    issued = sign_in(housing, "zhangsan", GOOD, T0)
    with tx(housing) as s:
        stored = s.scalars(select(TokenRow.token_hash)).all()
    assert stored == [hashlib.sha256(issued.token.encode()).hexdigest()]
    assert issued.token not in stored


def test_a_wrong_password_is_refused_without_saying_which_part_was_wrong(housing: Engine) -> None:
    wrong = refusal(housing, "zhangsan", "wrong-password-1", T0)
    unknown = refusal(housing, "nobody", GOOD, T0)
    assert wrong.reason == unknown.reason == auth.BAD_CREDENTIALS
    assert wrong.retry_after is None


def test_logout_ends_the_token(housing: Engine) -> None:
    issued = sign_in(housing, "zhangsan", GOOD, T0)
    with tx(housing) as s:
        assert auth.logout(s, issued.token)
    assert who(housing, issued.token, T0) is None
    with tx(housing) as s:
        assert not auth.logout(s, issued.token)  # already ended


def test_an_outdated_hash_is_replaced_at_the_next_login(housing: Engine) -> None:
    with tx(housing) as s:
        auth.get_user(s, "li").password_hash = PasswordHasher(time_cost=2, memory_cost=2048).hash(GOOD)
    sign_in(housing, "li", GOOD, T0)
    with tx(housing) as s:
        renewed = auth.get_user(s, "li").password_hash
    assert not auth._hasher.check_needs_rehash(renewed)
    assert auth.verify_password(renewed, GOOD)


# ---- the limiter ----------------------------------------------------------------------------


def test_after_five_failures_even_the_right_password_waits_out_the_lockout(housing: Engine) -> None:
    for i in range(5):
        refusal(housing, "zhangsan", f"guess-number-{i}", T0 + timedelta(seconds=i))
    last = T0 + timedelta(seconds=4)
    locked = refusal(housing, "zhangsan", GOOD, T0 + timedelta(seconds=10))
    assert locked.retry_after == pytest.approx((last + LOCKOUT - (T0 + timedelta(seconds=10))).total_seconds())
    assert "分钟后再试" in locked.reason
    # Trying while locked does not move the end of the lock.
    refusal(housing, "zhangsan", GOOD, last + LOCKOUT - timedelta(seconds=1))
    assert sign_in(housing, "zhangsan", GOOD, last + LOCKOUT).principal.username == "zhangsan"


def test_unknown_names_are_locked_like_known_ones(db: Engine) -> None:
    for i in range(5):
        assert refusal(db, "ghost", f"guess-number-{i}", T0).retry_after is None
    assert refusal(db, "ghost", "guess-number-5", T0).retry_after == pytest.approx(LOCKOUT.total_seconds())


def test_failures_spread_wider_than_the_window_do_not_lock(housing: Engine) -> None:
    for i in range(5):
        refusal(housing, "zhangsan", "wrong-password-1", T0 + i * WINDOW / 4 + timedelta(seconds=i))
    assert sign_in(housing, "zhangsan", GOOD, T0 + WINDOW + timedelta(seconds=5))


def test_a_successful_login_forgets_the_names_failures(housing: Engine) -> None:
    for _ in range(4):
        refusal(housing, "zhangsan", "wrong-password-1", T0)
    sign_in(housing, "zhangsan", GOOD, T0)
    for _ in range(4):
        refusal(housing, "zhangsan", "wrong-password-1", T0)
    assert sign_in(housing, "zhangsan", GOOD, T0)  # 4 + 4 failures, but never 5 in a row


def test_failures_too_old_to_matter_are_pruned(db: Engine) -> None:
    refusal(db, "ghost", "guess-number-1", T0)
    refusal(db, "phantom", "guess-number-1", T0 + WINDOW + LOCKOUT + timedelta(seconds=1))
    with tx(db) as s:
        assert s.scalars(select(LoginFailureRow.username)).all() == ["phantom"]


def test_a_very_long_name_or_source_is_still_counted(db: Engine) -> None:
    with Session(db) as s:
        with pytest.raises(LoginRefused):
            auth.login(s, "x" * 500, "guess-number-1", T0, source="y" * 500, ttl=TTL, max_failures=5,
                       window=WINDOW, lockout=LOCKOUT)
        s.commit()
    with tx(db) as s:
        assert auth.failures(s, "x" * 64) == 1


# ---- who may act ----------------------------------------------------------------------------


def test_a_disabled_user_loses_its_tokens_and_cannot_sign_in(housing: Engine) -> None:
    issued = sign_in(housing, "zhangsan", GOOD, T0)
    with tx(housing) as s:
        auth.disable_user(s, "zhangsan")
    assert who(housing, issued.token, T0) is None
    assert refusal(housing, "zhangsan", GOOD, T0).reason == auth.BAD_CREDENTIALS
    with tx(housing) as s:
        auth.enable_user(s, "zhangsan")
    assert who(housing, issued.token, T0) is None  # revoked for good
    assert sign_in(housing, "zhangsan", GOOD, T0)


def test_users_of_an_inactive_department_neither_authenticate_nor_sign_in(housing: Engine) -> None:
    issued = sign_in(housing, "zhangsan", GOOD, T0)
    with tx(housing) as s:
        auth.update_department(s, "housing", active=False)
    assert who(housing, issued.token, T0) is None
    assert refusal(housing, "zhangsan", GOOD, T0).reason == auth.BAD_CREDENTIALS
    assert sign_in(housing, "li", GOOD, T0)  # an agent belongs to no department
    with tx(housing) as s:
        auth.update_department(s, "housing", active=True)
    assert who(housing, issued.token, T0) is not None


def test_a_new_password_ends_the_old_tokens_and_the_old_password(housing: Engine) -> None:
    issued = sign_in(housing, "zhangsan", GOOD, T0)
    with tx(housing) as s:
        auth.set_password(s, "zhangsan", "a-new-secret-7", T0)
    assert who(housing, issued.token, T0) is None
    refusal(housing, "zhangsan", GOOD, T0)
    assert sign_in(housing, "zhangsan", "a-new-secret-7", T0)


def test_a_new_password_lifts_a_lockout(housing: Engine) -> None:
    for i in range(5):
        refusal(housing, "zhangsan", f"guess-number-{i}", T0)
    with tx(housing) as s:
        auth.set_password(s, "zhangsan", "a-new-secret-7", T0)
    assert sign_in(housing, "zhangsan", "a-new-secret-7", T0)


def test_weak_new_passwords_are_refused(housing: Engine) -> None:
    with pytest.raises(WeakPassword, match="全是数字"), tx(housing) as s:
        auth.set_password(s, "zhangsan", "1234567890", T0)


# ---- departments and users ------------------------------------------------------------------


def test_a_department_user_needs_an_existing_active_department(db: Engine) -> None:
    with tx(db) as s:
        auth.add_department(s, "water", "市水务局", "", T0)
        auth.update_department(s, "water", active=False)
    for dept, reason in [(None, "--dept"), ("nosuch", "没有代码为 'nosuch' 的部门"), ("water", "已停用")]:
        with pytest.raises(AdminError, match=reason), tx(db) as s:
            auth.add_user(s, "wangwu", GOOD, "department", T0, department_code=dept)
    with pytest.raises(AdminError, match="不要指定 --dept"), tx(db) as s:
        auth.add_user(s, "wangwu", GOOD, "supervisor", T0, department_code="water")
    with tx(db) as s:
        assert auth.list_users(s) == []


def test_departments_refuse_a_taken_code_or_name_naming_which(housing: Engine) -> None:
    with pytest.raises(AdminError, match="部门代码 'housing' 已存在"), tx(housing) as s:
        auth.add_department(s, "housing", "另一个局", "", T0)
    with pytest.raises(AdminError, match="部门名称 '市住建局' 已被部门 'housing' 使用"), tx(housing) as s:
        auth.add_department(s, "jianshe", "市住建局", "", T0)
    with tx(housing) as s:
        auth.add_department(s, "water", "市水务局", "", T0)
    with pytest.raises(AdminError, match="已被部门 'housing' 使用"), tx(housing) as s:
        auth.update_department(s, "water", name="市住建局")


@pytest.mark.parametrize(("code", "phone", "reason"), [
    ("Housing", "", "部门代码"), ("a" * 33, "", "部门代码"), ("water", "0571-8700", "电话"),
])
def test_departments_refuse_malformed_codes_and_phones(db: Engine, code: str, phone: str, reason: str) -> None:
    with pytest.raises(AdminError, match=reason), tx(db) as s:
        auth.add_department(s, code, "市水务局", phone, T0)


def test_department_changes_apply_only_what_is_given(housing: Engine) -> None:
    with tx(housing) as s:
        auth.update_department(s, "housing", phone="+8657187009999")
    with tx(housing) as s:
        [dept] = auth.list_departments(s)
        assert (dept.code, dept.name, dept.phone, dept.active) == ("housing", "市住建局", "+8657187009999", True)


def test_user_names_and_agent_ids_are_unique(housing: Engine) -> None:
    with pytest.raises(AdminError, match="用户名 'li' 已存在"), tx(housing) as s:
        auth.add_user(s, "LI", GOOD, "agent", T0)
    with pytest.raises(AdminError, match="工号 1001 已属于用户 'li'"), tx(housing) as s:
        auth.add_user(s, "zhao", GOOD, "agent", T0, agent_id="1001")


@pytest.mark.parametrize(("role", "agent_id", "reason"), [
    ("agent", "10a1", "工号 '10a1' 无效"), ("supervisor", "1002", "只有 agent"), ("boss", None, "角色 'boss' 无效"),
])
def test_roles_and_agent_ids_are_checked(db: Engine, role: str, agent_id: str | None, reason: str) -> None:
    with pytest.raises(AdminError, match=reason), tx(db) as s:
        auth.add_user(s, "zhao", GOOD, role, T0, agent_id=agent_id)


def test_unknown_users_are_named_in_the_refusal(db: Engine) -> None:
    for change in (auth.disable_user, auth.enable_user):
        with pytest.raises(AdminError, match="没有用户 'nobody'"), tx(db) as s:
            change(s, "nobody")


def test_an_unknown_name_costs_the_same_argon2_verify_as_a_known_one(db: Engine,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Timing must not tell whether a name exists: the unknown name is checked against a real hash.
    checked: list[str] = []
    verify = auth.verify_password

    def spy(hashed: str, password: str) -> bool:
        checked.append(hashed)
        return verify(hashed, password)

    monkeypatch.setattr(auth, "verify_password", spy)
    refusal(db, "ghost", GOOD, T0)
    assert len(checked) == 1
    assert checked[0].startswith("$argon2id$")


def test_a_password_with_spaces_at_its_ends_is_refused_by_the_policy() -> None:
    for password in ("  long-password-1  ", " " * 12, "x" * 1025):
        with pytest.raises(auth.WeakPassword):
            auth.check_password("li", password)


def test_no_write_is_held_while_the_password_is_checked(housing: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # On SQLite a write held across argon2's ~0.4 s would stall every other writer (call records
    # among them): while the check runs, another connection must be able to write at once.
    from sqlalchemy import text

    wrote: list[bool] = []
    real = auth.verify_password

    def check_then_write(hashed: str, password: str) -> bool:
        other = housing.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            if housing.dialect.name == "sqlite":
                other.exec_driver_sql("PRAGMA busy_timeout = 100")
            other.execute(text("UPDATE departments SET phone = phone"))
            wrote.append(True)
        finally:
            other.close()
        return real(hashed, password)

    monkeypatch.setattr(auth, "verify_password", check_then_write)
    sign_in(housing, "li", GOOD, T0)
    assert wrote == [True]


def test_a_lockout_shorter_than_the_window_ends_when_it_says(housing: Engine) -> None:
    def attempt(password: str, at: datetime) -> Issued:
        with Session(housing) as s:
            try:
                return auth.login(s, "li", password, at, source="x", ttl=TTL, max_failures=5,
                                  window=timedelta(minutes=60), lockout=timedelta(minutes=5))
            finally:
                s.commit()

    for i in range(5):
        with pytest.raises(LoginRefused):
            attempt("wrong-password-9", T0 + timedelta(seconds=i))
    with pytest.raises(LoginRefused) as locked:
        attempt(GOOD, T0 + timedelta(minutes=1))
    assert locked.value.retry_after is not None and locked.value.retry_after <= 5 * 60
    assert attempt(GOOD, T0 + timedelta(minutes=5, seconds=5)).principal.username == "li"


def test_guesses_sent_at_once_are_checked_no_more_often_than_the_limit(housing: Engine) -> None:
    import threading

    checked = 0
    lock = threading.Lock()
    real = auth.verify_password
    start = threading.Barrier(20)

    def counting(hashed: str, password: str) -> bool:
        nonlocal checked
        with lock:
            checked += 1
        return real(hashed, password)

    def guess() -> None:
        start.wait()
        with contextlib.suppress(LoginRefused, OperationalError):  # SQLite may say "locked" to some
            sign_in(housing, "li", "wrong-password-9", T0)

    auth_verify = auth.verify_password
    auth.verify_password = counting  # type: ignore[assignment]
    try:
        threads = [threading.Thread(target=guess) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        auth.verify_password = auth_verify  # type: ignore[assignment]
    assert checked <= 5  # without the second look, all 20 were checked on PostgreSQL
