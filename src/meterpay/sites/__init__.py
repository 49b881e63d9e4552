"""Places (site, building, floor, unit), customers and prepaid accounts."""
