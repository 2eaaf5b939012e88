"""PostgreSQL warehouse: connection (external or embedded), schema, batch commit, queries, media."""
