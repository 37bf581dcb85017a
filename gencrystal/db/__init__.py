"""The pressure-labelled structure database (ASE db: SQLite file or PostgreSQL URL)."""
