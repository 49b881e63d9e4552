"""Payments: top-up orders, provider notifications, refunds, reconciliation."""
