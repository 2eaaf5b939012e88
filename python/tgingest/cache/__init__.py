"""The read cache: L1 in-process, L2 in Redis, and the invalidation that keeps both honest.

One concern per module: l1.py (bounded TTL map), codec.py (what a Redis value must carry to be
trusted), keys.py (Redis names; which keys a commit changed), l2.py (read-through with fill
leases), listener.py (pub/sub -> L1, leases), invalidator.py (the commit side), read_cache.py
(the two levels in front of PostgreSQL for tgingest.Warehouse).
"""

from tgingest.cache.invalidator import Invalidator, flush_all
from tgingest.cache.read_cache import CacheStats, ReadCache

__all__ = ["CacheStats", "Invalidator", "ReadCache", "flush_all"]
