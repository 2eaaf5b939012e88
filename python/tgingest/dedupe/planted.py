"""A seeded corpus with planted near-duplicates, for measuring precision and recall.

Each family is one base text (pseudo-English, pseudo-Russian, or Chinese written in Simplified
characters that have Traditional forms) plus variants a channel really produces: a few
characters edited, a link added, emoji added, the Traditional spelling, or two of these at once.
Every family also gets a hard negative, a sibling that shares the base's first half but not the
rest: a different message by the ground truth, which a detector must keep apart. Pairs inside a
family are true near-duplicates; every other pair is not. Used by benches/bench_dedupe.py and
the tests; `scores` turns cluster labels into pair precision and recall.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from tgingest._core import fold_chinese

VARIANTS = ("typo", "link", "emoji", "traditional", "typo+link", "emoji+traditional")
_EMOJI = "🔥🚀🎉👍😂❤️✅⚡📢💯"
_COMMON_HAN = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自"
    "二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日"
    "那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变"
    "条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总"
    "次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指"
    "几九区强放决西被干做必战先回则任取据处理"
)
_SYLLABLES = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"] + ["ch", "sh", "th"]
_CYR = [a + b for a in "бвгдзклмнпрст" for b in "аеиоуя"]


@cache
def _to_traditional() -> dict[str, str]:
    """Simplified -> one Traditional form, inverted from the Rust core's own folding table."""
    han = [chr(c) for c in range(0x4E00, 0x9FA6)]
    out: dict[str, str] = {}
    for trad, simp in zip(han, fold_chinese(han), strict=True):
        if trad != simp and len(simp) == 1:
            out.setdefault(simp, trad)
    return out


@dataclass(frozen=True)
class Planted:
    texts: list[str]
    family: list[int]  # family id per text; a hard negative has a family of its own
    kinds: list[str]  # "base", "negative" or the variant's kind


def _word(rnd: random.Random, syllables: Sequence[str]) -> str:
    return "".join(rnd.choice(syllables) for _ in range(rnd.randint(1, 3)))


def _base(rnd: random.Random, script: str, words: int) -> str:
    if script == "zh":
        pool = "".join(_to_traditional()) + _COMMON_HAN
        text = "".join(rnd.choice(pool) for _ in range(words * 2))
        return "，".join(text[i : i + 12] for i in range(0, len(text), 12)) + "。"
    syllables = _CYR if script == "ru" else _SYLLABLES
    return " ".join(_word(rnd, syllables) for _ in range(words)).capitalize() + "."


def _typo(rnd: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        i = rnd.randrange(len(chars))
        op = rnd.random()
        if op < 0.4:
            chars[i] = rnd.choice("aeiouxyzаоие的是")
        elif op < 0.7:
            del chars[i]
        else:
            chars.insert(i, rnd.choice("aeiouxyz的是"))
    return "".join(chars)


def _variant(rnd: random.Random, base: str, kind: str) -> str:
    text = base
    for part in kind.split("+"):
        if part == "typo":
            text = _typo(rnd, text, rnd.randint(1, 3))
        elif part == "link":
            text += f" https://t.me/{_word(rnd, _SYLLABLES)}/{rnd.randint(1, 99999)}"
        elif part == "emoji":
            text = rnd.choice(_EMOJI) + " " + text + " " + rnd.choice(_EMOJI) * rnd.randint(1, 3)
        elif part == "traditional":
            trad = _to_traditional()
            text = "".join(trad.get(c, c) for c in text)
    return text


def generate(families: int, seed: int = 11, *, min_words: int = 12, max_words: int = 40) -> Planted:
    rnd = random.Random(seed)
    texts: list[str] = []
    family: list[int] = []
    kinds: list[str] = []
    fam = 0

    def add(text: str, kind: str) -> None:
        texts.append(text)
        family.append(fam)
        kinds.append(kind)

    for _ in range(families):
        script = rnd.choice(("en", "en", "ru", "zh"))
        base = _base(rnd, script, rnd.randint(min_words, max_words))
        options = [k for k in VARIANTS if script == "zh" or "traditional" not in k]
        add(base, "base")
        for kind in rnd.sample(options, rnd.randint(1, 3)):
            add(_variant(rnd, base, kind), kind)
        fam += 1
        # The hard negative: same opening, different rest.
        half = len(base) // 2
        rest = _base(rnd, script, max(2, (len(base) - half) // 6))
        add(base[:half] + " " + rest, "negative")
        fam += 1
    order = list(range(len(texts)))
    rnd.shuffle(order)
    return Planted([texts[i] for i in order], [family[i] for i in order], [kinds[i] for i in order])


def _pairs(counter: Counter[Any]) -> int:
    return sum(n * (n - 1) // 2 for n in counter.values())


def scores(labels: Sequence[int], family: Sequence[int]) -> tuple[float, float]:
    """Pair precision and recall of clusters `labels` against the planted `family`."""
    predicted = _pairs(Counter(labels))
    true = _pairs(Counter(family))
    both = _pairs(Counter(zip(labels, family, strict=True)))
    precision = both / predicted if predicted else 1.0
    recall = both / true if true else 1.0
    return precision, recall


def recall_by_kind(labels: Sequence[int], family: Sequence[int], kinds: Sequence[str]) -> dict:
    """Per variant kind: the share of variants clustered with their family's base."""
    base_label = {f: lab for lab, f, k in zip(labels, family, kinds, strict=True) if k == "base"}
    hit: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for lab, f, k in zip(labels, family, kinds, strict=True):
        if k in ("base", "negative"):
            continue
        seen[k] += 1
        hit[k] += lab == base_label[f]
    return {k: hit[k] / seen[k] for k in sorted(seen)}
