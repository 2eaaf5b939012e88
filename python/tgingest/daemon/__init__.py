"""The long-running side: `tgingest run` (follow Telegram) and `tgingest worker` (commit from
Redis Streams), with their config, committing, metrics, logs and status."""
