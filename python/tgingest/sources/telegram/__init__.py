"""Telegram through Telethon: the client and sessions, the mapping of Telethon's messages to
the warehouse's rows, history backfill and live updates, and media downloads.

Nothing here imports the store: the daemon hands what these modules produce to the pipeline.
"""
