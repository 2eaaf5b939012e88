"""A seeded corpus of realistic Telegram message text for the benchmarks.

Latin, Cyrillic, Chinese, Japanese, Korean, Arabic, emoji, URLs with tracking parameters,
@mentions and #hashtags; lengths from 1 character to 4096 with a long tail like real chats.
"""

from __future__ import annotations

import random

FRAGMENTS = [
    "PostgreSQL backup finished",
    "see https://Example.com/report?utm_source=tg&id=42",
    "ping @DataTeam about #release",
    "Встреча перенесена на завтра",
    "мы обсудили новую схему",
    "我们明天讨论数据库的分区方案",
    "這個頻道的資料庫備份已經完成了",
    "東京の天気は晴れです",
    "오늘 회의는 세 시에 시작합니다",
    "مرحبا بالجميع، الاجتماع في الساعة",
    "🚀🔥 great news 🎉",
    "Full-width ＡＢＣ１２３",
    "$BTC up 5%",
    "ok",
    "👍",
]


def corpus(n: int, seed: int = 42) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        target = min(4096, int(rng.paretovariate(1.2) * 40)) if rng.random() > 0.05 else 1
        parts: list[str] = []
        size = 0
        while size < target:
            frag = rng.choice(FRAGMENTS)
            parts.append(frag)
            size += len(frag) + 1
        text = " ".join(parts)[:target] if target > 1 else rng.choice("a👍好")
        if rng.random() < 0.1:
            text = text.replace(" ", "\n", 2)
        texts.append(text)
    return texts
