"""Data quality: checks that find what is missing, inconsistent, stale or unusual in the
warehouse, and repairs that fix it, each audited (`tgingest quality check|repair`).

checks.py names the checks; completeness, consistency, aggregates, hashes and activity hold
them; repair.py orders the repairs of repair_rows (inside the database) and repair_media (files
and re-reads from Telegram); refetch.py is the queue of re-reads the daemon works from.
"""
