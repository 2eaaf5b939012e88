"""Smart dedupe: exact reposts in a 7-day window (reposts.py, with the shared Redis window in
window.py) and SimHash near-duplicate clusters (simhash.py, clusters.py); `tgingest dedupe`."""
