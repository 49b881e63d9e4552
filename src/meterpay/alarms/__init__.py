"""Alarms: calls for a person (arrears nobody may cut, a relay that disagrees with its
command, consumption while cut off), de-duplicated while open."""
