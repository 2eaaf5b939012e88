"""tgingest: a Telegram message warehouse with a Rust hot path.

The batch functions and classes come from the Rust core (``tgingest._core``, typed in
``_core.pyi``) and are re-exported here as they are; the rest of the package (PostgreSQL store,
export import, CLI) is built on them.
"""

from __future__ import annotations

from tgingest import _core
from tgingest._core import *  # noqa: F403  (the core's own __all__ is the public list)
from tgingest.errors import TgIngestError

__all__ = [*_core.__all__, "TgIngestError"]
