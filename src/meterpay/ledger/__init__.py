"""Ledger: double-entry, append-only transfers between ledger accounts.

``model`` and ``rules`` are pure: transfers, balances in the TigerBeetle
style (posted debits and credits per account) and the invariant checks.
"""
