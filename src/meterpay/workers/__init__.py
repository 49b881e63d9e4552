"""Long-running loops that carry work out after the commit: outbox deliverers and the
like. Each is an ``async`` function that runs until its stop event is set."""
