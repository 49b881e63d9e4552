"""Metering: meters, gateways, readings and their validation (VEE).

``model`` and ``rules`` are pure: they judge a cumulative register reading
against the last accepted one and say whether, and how much, it bills.
"""
