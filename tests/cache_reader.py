"""A second process reading through tgingest.Warehouse, driven line by line on stdin (JSON), for
the cache tests: invalidations must reach its L1 from the committing process.

    {"op": "read", "chat": C, "message": M} -> {"text", "edit_date", "deleted", "stats"}
    {"op": "live"}                         -> waits until its L1 lease holds, then {"live": true}
    {"op": "block", "seconds": S}           -> blocks its event loop (time.sleep), then {}
Settings come from the environment (TGINGEST_DSN, TGINGEST_REDIS_URL, TGINGEST_REDIS_PREFIX).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time

import tgingest


async def main() -> None:
    loop = asyncio.get_running_loop()
    async with tgingest.Warehouse() as wh:
        print(json.dumps({"ready": True}), flush=True)
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            cmd = json.loads(line)
            out: dict = {}
            if cmd["op"] == "read":
                m = await wh.message(cmd["chat"], cmd["message"])
                out = {
                    "text": m.text if m else None,
                    "edit_date": m.edit_date.isoformat() if m and m.edit_date else None,
                    "deleted": bool(m and m.deleted_at),
                    "stats": dataclasses.asdict(wh.cache.stats),
                }
            elif cmd["op"] == "live":
                wh.cache.start()
                while wh.cache.listener is None or not wh.cache.listener.live():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                out = {"live": True}
            elif cmd["op"] == "block":
                time.sleep(cmd["seconds"])  # noqa: ASYNC251  (the whole event loop stands still)
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
