"""Where messages come from: Telegram Desktop exports (and Telethon, in its own module).

Sources produce `RawBatch`es and never import the store.
"""
