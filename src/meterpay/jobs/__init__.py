"""Background jobs (后台任务): long imports and exports that run beside the web server,
report their progress and can be left and revisited."""
