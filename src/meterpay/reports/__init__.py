"""Read models and exports: what the console, the portal and reports show."""
