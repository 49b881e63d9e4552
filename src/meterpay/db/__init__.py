"""Storage: SQLAlchemy Core schema, engine set-up and the unit of work."""
