"""Data protection: logical backups with proven restores, pgBackRest physical backups and
recovery drills, a streaming replica and its failover drill, the hot/warm/cold partition
lifecycle, and media garbage collection.

One module per concern: catalog (what a backup holds), snapshot (one consistent view and
incremental capture), checksum, files, manifest, logical (create), restore, verify, prune,
mediafiles; pgtools (running PostgreSQL's programs without secrets in argv), physical
(pgBackRest), drill (point-in-time recovery into a scratch cluster), replica (standby and the
failover drill); lifecycle (partitions maintain), archive (cold months), media_gc.
"""
