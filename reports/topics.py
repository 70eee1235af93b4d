"""热点诉求 (hot topics): the request types, places and words that rose most against the previous period.

Pure: the texts come in (reports/topics_store.py reads them from the store), `Topics` goes out.
Everything is counted in tickets, not in mentions: a word, a category or a place counts at
most once per ticket (document frequency), so one caller repeating 噪音 five times, or a long
ticket, weighs as much as any other ticket.

Ranking ("rose most") is by Dunning's log-likelihood G² of the 2x2 table

                     this period     previous period
    with the term        a                 b
    without it        n1 - a            n2 - b

which is what corpus linguistics uses for keyness (Dunning 1993; Rayson & Garside 2000).
Unlike a ratio of shares it does not favour tiny counts (1 → 3 is a tripling, and G² says
it is noise), it allows for a period with more tickets overall (a month with twice the calls
doubles every count; nothing has risen), and a term absent before still gets a finite score.
A term is listed only if its share of tickets rose, it is in at least `min_count` tickets of
this period, and G² ≥ `min_score` (3.84: p < 0.05 with one degree of freedom). With no
previous tickets there is nothing to rise against: terms are ranked by count, score None.

Words: `content` is segmented with rjieba (jieba-rs, jieba's dictionary and POS tags); a
ticket has no title field, and the address is left out (places are ranked from district and
street; house numbers are no topic). Kept: nouns, verbs, place and organisation names,
idioms and abbreviations, Latin words (APP, ETC), of two characters or more, not in
stopwords_zh.txt. Person names (POS nr) are dropped: a hot-topic list is published, and
citizens' names in ticket texts must not reach it. jieba tags a few ordinary words as names
(养老金); userdict_zh.txt re-tags them, and adds the city's places and programmes as whole
words. rjieba 0.2.2 has `Jieba.add_word(word, freq, tag)` (used, on an instance of our own),
but for a word its dictionary already has it changes the frequency and keeps the old tag:
so the userdict's tags are also applied here, after tagging.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import rjieba

HERE = Path(__file__).parent
STOPWORDS_FILE = HERE / "stopwords_zh.txt"
USERDICT_FILE = HERE / "userdict_zh.txt"

MIN_COUNT = 3  # tickets of this period a term must be in to be listed
MIN_SCORE = 3.84  # G², chi-square 1 d.f. at p = 0.05
MIN_WORD_CHARS = 2
# jieba's tags (ICTCLAS set) kept as words: nouns (n), place (ns), organisation (nt) and other
# proper names (nz), noun-like verbs (vn), verbs (v, vi), idioms (i), set phrases (l, e.g.
# 违章建筑), abbreviations (j, 医保), Latin words (eng). Left out: person names (nr, nrt, nrfg),
# adjectives, adverbs, numbers, measure words, pronouns, times, directions, function words.
KEEP_TAGS = frozenset({"n", "ns", "nt", "nz", "nl", "ng", "vn", "v", "vi", "i", "l", "j", "eng"})
USER_TAG = "nz"  # a userdict word written without a tag: a name the hotline wants counted


@dataclass(frozen=True)
class TicketText:
    """What hot topics reads of one ticket."""

    category: str = ""
    district: str = ""
    street: str = ""
    content: str = ""


@dataclass(frozen=True)
class Rise:
    term: str  # a word, a category, a district, or "district/street"
    current: int  # tickets of this period with it
    previous: int  # tickets of the previous period with it
    score: float | None  # G²; None when the previous period had no tickets

    @property
    def change(self) -> int:
        return self.current - self.previous

    def as_json(self) -> dict[str, Any]:
        return {"term": self.term, "current": self.current, "previous": self.previous, "change": self.change,
                "score": None if self.score is None else round(self.score, 2)}


@dataclass(frozen=True)
class Topics:
    current_tickets: int
    previous_tickets: int
    categories: tuple[Rise, ...]
    districts: tuple[Rise, ...]
    streets: tuple[Rise, ...]  # "district/street"
    words: tuple[Rise, ...]
    period: tuple[datetime, datetime] | None = None  # [start, end), set by topics_store.hot_topics
    previous_period: tuple[datetime, datetime] | None = None
    measure: str = field(default=f"G² log-likelihood over tickets; count ≥ {MIN_COUNT}, G² ≥ {MIN_SCORE}")

    def as_json(self) -> dict[str, Any]:
        def span(p: tuple[datetime, datetime] | None) -> list[str] | None:
            return None if p is None else [p[0].isoformat(), p[1].isoformat()]

        return {"period": span(self.period), "previous_period": span(self.previous_period),
                "current_tickets": self.current_tickets, "previous_tickets": self.previous_tickets,
                "measure": self.measure,
                **{name: [r.as_json() for r in getattr(self, name)]
                   for name in ("categories", "districts", "streets", "words")}}


@dataclass(frozen=True)
class UserWord:
    word: str
    freq: int | None = None  # None: as much as it takes to keep the word whole
    tag: str = USER_TAG


def parse_stopwords(text: str) -> frozenset[str]:
    """One word a line; # starts a comment; blank lines are skipped."""
    words = (unicodedata.normalize("NFKC", line.split("#", 1)[0]).strip() for line in text.splitlines())
    return frozenset(w for w in words if w)


def parse_userdict(text: str) -> list[UserWord]:
    """jieba's user dictionary format, `word [freq] [tag]` a line, plus # comments."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        parts = unicodedata.normalize("NFKC", line.split("#", 1)[0]).split()
        if not parts:
            continue
        word, rest = parts[0], parts[1:]
        freq = int(rest.pop(0)) if rest and rest[0].isdigit() else None
        tag = rest.pop(0) if rest else USER_TAG
        if rest:
            raise ValueError(f"userdict line {number}: {line.strip()!r}: write `word [freq] [tag]`")
        out.append(UserWord(word, freq, tag))
    return out


class Segmenter:
    """Ticket text -> the set of its meaningful words."""

    def __init__(self, stopwords: Iterable[str] = (), userdict: Iterable[UserWord] = ()) -> None:
        # An instance of our own: add_word on rjieba's module-level one would change how every
        # other user of rjieba in the process segments.
        self._jieba = rjieba.Jieba()
        self.stopwords = frozenset(stopwords)
        self._tags: dict[str, str] = {}  # add_word does not re-tag a word jieba knows (养老金 stays nr)
        for w in userdict:
            self._jieba.add_word(w.word, w.freq, w.tag)
            self._tags[w.word] = w.tag

    def words(self, text: str) -> set[str]:
        out = set()
        for piece, tagged in self._jieba.tag(unicodedata.normalize("NFKC", text)):
            tag = self._tags.get(piece, tagged)
            if tag not in KEEP_TAGS or len(piece) < MIN_WORD_CHARS:
                continue
            # Digits and Latin tokens that are not plain words are what personal data is made of
            # (ID numbers 61040219900101123X, plates 陕A12345, e-mail addresses, phone numbers):
            # a published list must never carry a repeat caller's.
            if any(ch.isdigit() for ch in piece) or (tag == "eng" and not piece.isalpha()):
                continue
            word = piece.upper() if tag == "eng" else piece  # App, APP and app are one word
            if word not in self.stopwords:
                out.add(word)
        return out


@functools.cache
def default_segmenter() -> Segmenter:
    """The shipped stop words and user dictionary (read once per process)."""
    return Segmenter(parse_stopwords(STOPWORDS_FILE.read_text(encoding="utf-8")),
                     parse_userdict(USERDICT_FILE.read_text(encoding="utf-8")))


@dataclass
class Counts:
    """Tickets per term of one period."""

    tickets: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    districts: Counter[str] = field(default_factory=Counter)
    streets: Counter[str] = field(default_factory=Counter)
    words: Counter[str] = field(default_factory=Counter)


def count(texts: Iterable[TicketText], segmenter: Segmenter) -> Counts:
    """One pass over the texts (a stream is fine: nothing is kept but the counts)."""
    c = Counts()
    for t in texts:
        c.tickets += 1
        if t.category:
            c.categories[t.category] += 1
        if t.district:
            c.districts[t.district] += 1
            if t.street:
                c.streets[f"{t.district}/{t.street}"] += 1
        c.words.update(segmenter.words(t.content))  # a set: once per ticket
    return c


def _xlogx_over(o: float, e: float) -> float:
    return o * math.log(o / e) if o > 0 else 0.0


def g2(a: int, n1: int, b: int, n2: int) -> float:
    """Dunning's log-likelihood of a term in a of n1 tickets now and b of n2 before (2x2 table)."""
    n = n1 + n2
    with_term, without = a + b, n - a - b
    return 2 * sum(_xlogx_over(o, row * col / n) for o, row, col in (
        (a, with_term, n1), (b, with_term, n2), (n1 - a, without, n1), (n2 - b, without, n2)))


def rising(current: Counter[str], previous: Counter[str], n_current: int, n_previous: int, *, top: int = 10,
           min_count: int = MIN_COUNT, min_score: float = MIN_SCORE) -> tuple[Rise, ...]:
    """The `top` terms that rose most, best first (ties: more tickets, then by name)."""
    if n_previous == 0:
        found = [Rise(t, a, 0, None) for t, a in current.items() if a >= min_count]
        found.sort(key=lambda r: (-r.current, r.term))
        return tuple(found[:top])
    out = []
    for term, a in current.items():
        b = previous.get(term, 0)
        if a < min_count or a * n_previous <= b * n_current:  # too few, or its share did not rise
            continue
        score = g2(a, n_current, b, n_previous)
        if score >= min_score:
            out.append(Rise(term, a, b, score))
    out.sort(key=lambda r: (-(r.score or 0.0), -r.current, r.term))
    return tuple(out[:top])


def topics(current: Iterable[TicketText], previous: Iterable[TicketText], *, top: int = 10,
           segmenter: Segmenter | None = None, min_count: int = MIN_COUNT, min_score: float = MIN_SCORE) -> Topics:
    """The hot topics of `current` against `previous`."""
    seg = segmenter or default_segmenter()
    now, before = count(current, seg), count(previous, seg)

    def rank(name: str) -> tuple[Rise, ...]:
        return rising(getattr(now, name), getattr(before, name), now.tickets, before.tickets, top=top,
                      min_count=min_count, min_score=min_score)

    return Topics(now.tickets, before.tickets, rank("categories"), rank("districts"), rank("streets"), rank("words"),
                  measure=f"G² log-likelihood over tickets; count ≥ {min_count}, G² ≥ {min_score}")
