"""Data quality: checks that find what is missing, inconsistent, stale or unusual in the
warehouse, and repairs that fix it, each audited (`tgingest quality check|repair`).

checks.py names the checks; completeness, consistency, aggregates, hashes and activity hold
them; repair.py orders the repairs of repair_rows (inside the database, with rederive.py and
textfix.py bringing rows and texts back from the ODS), repair_stats (the daily aggregates) and
repair_media (files, and re-reads from Telegram through refetch.py's queue); periodic.py is the
daemon's pass into Prometheus gauges; api.py the same from Python.
"""
