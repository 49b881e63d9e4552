"""The append-only audit log: who did what to money, meters and config, and why."""
