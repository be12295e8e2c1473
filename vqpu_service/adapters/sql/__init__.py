"""The SQLModel task store, one implementation for SQLite (embedded default) and PostgreSQL."""
