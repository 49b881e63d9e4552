"""Billing: readings -> consumption -> priced charge lines -> ledger charges.

``rules`` is pure: it prices consumption by the tariff versions in force and
rounds to the fen without ever losing the sub-fen remainder.
"""
