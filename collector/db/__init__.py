"""PostgreSQL: where the SQL files are, the migration runner and the embedded server."""
