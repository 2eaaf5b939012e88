"""Labels: versioned label sets (store.py), label schemas (schema.py), JSONL import
(importer.py) and automatic labelers registered as entry points (labelers.py, builtin.py)."""
