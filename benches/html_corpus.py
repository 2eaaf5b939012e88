"""The same chat as an HTML export: a generated result.json (tgingest.samples, one message per
line) rewritten page by page the way Telegram Desktop lays out its HTML (block indentation,
userpics, date titles with the UTC offset, joined messages, day separators, 1,000 messages a
page), streaming, so the HTML and JSON imports of one chat can be measured side by side."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PER_PAGE = 1000
_ESC = {"\n": "<br>", '"': "&quot;", "&": "&amp;", "'": "&apos;", "<": "&lt;", ">": "&gt;"}


def _ser(s: str) -> str:
    return "".join(_ESC.get(c, c) for c in s)


def _messages(result_json: Path) -> Iterator[dict[str, Any]]:
    """Messages of a single-chat samples export, one per line, without loading the file."""
    with result_json.open(encoding="utf-8") as f:
        for line in f:
            if line.startswith("  {"):
                yield json.loads(line.strip().rstrip(","))


def _text(runs: Any) -> str:
    if isinstance(runs, str):
        return _ser(runs)
    out = []
    for r in runs:
        if isinstance(r, str):
            out.append(_ser(r))
        elif r["type"] == "bold":
            out.append(f"<strong>{_ser(r['text'])}</strong>")
        elif r["type"] == "link":
            out.append(f'<a href="{_ser(r["text"])}">{_ser(r["text"])}</a>')
        else:
            out.append(_ser(r["text"]))
    return "".join(out)


def _when(m: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(m["date_unixtime"]), dt.UTC)


def _block(m: dict[str, Any], joined: bool, indent: str) -> str:
    i2, i3 = indent + " ", indent + "  "
    if m["type"] == "service":
        sentence = f"{_ser(m['actor'])} pinned this message"
        return (
            f'\n{indent}<div class="message service" id="message{m["id"]}">\n\n{i2}'
            f'<div class="body details">\n{sentence}\n{i2}</div>\n\n{indent}</div>\n'
        )
    when = _when(m)
    out = [
        f'\n{indent}<div class="message default clearfix{" joined" if joined else ""}" '
        f'id="message{m["id"]}">\n'
    ]
    if not joined:
        initials = "".join(p[:1] for p in m["from"].split()[:2])
        out.append(
            f'\n{i2}<div class="pull_left userpic_wrap">\n\n{i3}<div class="userpic '
            f'userpic3" style="width: 42px; height: 42px">\n{_ser(initials)}\n{i3}'
            f"</div>\n\n{i2}</div>\n"
        )
    out.append(
        f'\n{i2}<div class="body">\n\n{i3}<div class="pull_right date details" title="'
        f'{when:%d.%m.%Y %H:%M:%S} UTC+00:00">\n{when:%H:%M}\n{i3}</div>\n'
    )
    if not joined:
        out.append(f'\n{i3}<div class="from_name">\n{_ser(m["from"])} \n{i3}</div>\n')
    if "reply_to_message_id" in m:
        r = m["reply_to_message_id"]
        out.append(
            f'\n{i3}<div class="reply_to details">\nIn reply to <a href="#go_to_message'
            f'{r}" onclick="return GoToMessage({r})">this message</a>\n{i3}</div>\n'
        )
    if str(m.get("photo", "")).startswith("photos/"):
        out.append(
            f'\n{i3}<div class="media_wrap clearfix">\n<a class="photo_wrap clearfix '
            f'pull_left" href="{m["photo"]}"><img class="photo" src="{m["photo"]}_thumb.'
            f'jpg"/></a>\n{i3}</div>\n'
        )
    text = _text(m.get("text", ""))
    if text:
        out.append(f'\n{i3}<div class="text">\n{text}\n{i3}</div>\n')
    for reaction in m.get("reactions", []):
        out.append(
            f'\n{i3}<span class="reactions"><span class="reaction"><span class="emoji">'
            f'{reaction["emoji"]}</span><span class="count">{reaction["count"]}</span>'
            "</span></span>\n"
        )
    out.append(f"\n{i2}</div>\n\n{indent}</div>\n")
    return "".join(out)


def write_html_export(result_json: Path, folder: Path) -> list[Path]:
    """Write messages.html, messages2.html, ... for the chat of `result_json`."""
    folder.mkdir(parents=True, exist_ok=True)
    pages: list[Path] = []
    out = None
    prev: dict[str, Any] | None = None
    date_id = 0
    for n, m in enumerate(_messages(result_json)):
        if n % PER_PAGE == 0:
            if out is not None:
                out.write("\n   </div>\n\n  </div>\n\n </body>\n\n</html>\n")
                out.close()
            pages.append(
                folder / ("messages.html" if not pages else f"messages{len(pages) + 1}.html")
            )
            out = pages[-1].open("w", encoding="utf-8")
            out.write(
                '<!DOCTYPE html>\n<html>\n\n <head>\n\n  <meta charset="utf-8"/>\n'
                ' </head>\n\n <body>\n\n  <div class="page_header">\n<div class="text '
                'bold">\nSample chat\n</div>\n</div>\n\n  <div class="history">\n'
            )
            prev = None
        assert out is not None
        if prev is None or _when(prev).date() != _when(m).date():
            date_id -= 1
            out.write(
                f'\n   <div class="message service" id="message{date_id}">\n'
                f'<div class="body details">\n{_when(m).day} {_when(m):%B %Y}\n</div>\n'
                "   </div>\n"
            )
        joined = (
            prev is not None
            and prev["type"] == "message"
            and m["type"] == "message"
            and prev["from"] == m["from"]
            and "forwarded_from" not in m
            and "forwarded_from" not in prev
            and (_when(m) - _when(prev)).total_seconds() <= 900
        )
        out.write(_block(m, joined, "   "))
        prev = m
    if out is not None:
        out.write("\n   </div>\n\n  </div>\n\n </body>\n\n</html>\n")
        out.close()
    return pages
