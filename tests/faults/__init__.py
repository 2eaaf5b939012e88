"""The fault harness: real `tgingest` processes, real signals, real PostgreSQL (see README.md)."""
