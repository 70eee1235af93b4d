"""The pages' words: zh-CN first, English on request (/lang/en). A missing key shows itself
(`⟦key⟧`) rather than a blank, so a test or a user notices it."""

from __future__ import annotations

from collections.abc import Callable

LANGS = ("zh", "en")

# key -> (中文, English). Page modules add their own words with `add`.
WORDS: dict[str, tuple[str, str]] = {
    "title": ("12345 政务服务便民热线", "12345 Government Service Hotline"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "username": ("用户名", "Username"),
    "password": ("密码", "Password"),
    "denied": ("您的角色无权访问此页面", "Your role may not open this page"),
    "back_home": ("返回首页", "Back to my page"),
    "store_down": ("工单库暂时不可用，请稍后刷新", "The ticket store is unavailable: please reload shortly"),
    "reload": ("刷新", "Reload"),
    "live_lost": ("实时连接中断，正在重连…", "Live connection lost, reconnecting…"),
    "language": ("English", "中文"),
}


def add(words: dict[str, tuple[str, str]]) -> None:
    clash = set(words) & set(WORDS)
    if clash:
        raise ValueError(f"i18n keys defined twice: {sorted(clash)}")
    WORDS.update(words)


def translator(lang: str) -> Callable[[str], str]:
    i = 1 if lang == "en" else 0

    def t(key: str) -> str:
        pair = WORDS.get(key)
        return pair[i] if pair is not None else f"⟦{key}⟧"

    return t
