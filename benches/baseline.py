"""The pure-Python baselines the benchmarks compare against: what a careful Python
implementation of the same per-message work looks like (unicodedata + re + xxhash + rbloom +
asyncpg's own COPY encoder)."""

from __future__ import annotations

import re
import unicodedata

import xxhash

_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[^\S\n]+")
_BLANKS = re.compile(r"\n{3,}")
_URL = re.compile(r"https?://[^\s]+")
_TRACKING = re.compile(r"([?&])(utm_[a-z]+|fbclid|gclid)=[^&\s]*&?")
_MENTION = re.compile(r"@\w+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]+")
_WORD = re.compile(r"[#$@]?\w+")


def normalize(text: str) -> str:
    text = text.replace("\x00", "\u2400")
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub("", _INVISIBLE.sub("", text)).replace("\r\n", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANKS.sub("\n\n", text).strip()


def content_key(text: str) -> str:
    text = _URL.sub(
        lambda m: _TRACKING.sub(r"\1", m.group(0).lower()).rstrip("?&"), normalize(text)
    )
    return _MENTION.sub(lambda m: m.group(0).lower(), text)


def tokens(text: str) -> list[str]:
    text = normalize(text).lower()
    out: list[str] = []
    for word in _WORD.findall(_CJK.sub(" ", text)):
        out.append(word)
        if word[0] in "#$@":
            out.append(word[1:])
    for run in _CJK.findall(text):
        out.extend(run)
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def content_hash(text: str) -> bytes:
    return xxhash.xxh3_128_digest(content_key(text).encode())


def version_key(chat_id: int, message_id: int, edit_date: int) -> int:
    return xxhash.xxh3_64_intdigest(
        chat_id.to_bytes(8, "little", signed=True)
        + message_id.to_bytes(8, "little", signed=True)
        + edit_date.to_bytes(8, "little", signed=True)
    )
