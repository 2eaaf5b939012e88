"""tgingest: a Telegram message warehouse with a Rust hot path.

The batch functions and classes come from the Rust core (``tgingest._core``, typed in
``_core.pyi``) and are re-exported here as they are; the rest of the package (PostgreSQL store,
export import, CLI) is built on them. ``tgingest.Warehouse`` is the read API (warehouse.py),
imported on first use so that ``import tgingest`` stays as light as the core.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tgingest import _core
from tgingest._core import *  # noqa: F403  (the core's own __all__ is the public list)
from tgingest.errors import TgIngestError

if TYPE_CHECKING:
    from tgingest.warehouse import Warehouse

__all__ = [*_core.__all__, "TgIngestError", "Warehouse"]


def __getattr__(name: str) -> Any:
    if name == "Warehouse":
        from tgingest.warehouse import Warehouse

        return Warehouse
    raise AttributeError(f"module 'tgingest' has no attribute {name!r}")
