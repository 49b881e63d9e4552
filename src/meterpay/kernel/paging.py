"""A page of a longer list, as the console's tables show it: the rows on this page, how
many there are in all, where the page starts and how many it may hold — enough for a
pager to say "41–60 of 75" and whether there is a next page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

Row = TypeVar("Row")


# No slots: on Python 3.11 a frozen, slotted generic dataclass cannot be built through an
# alias such as ``LedgerPage = RowsPage[LedgerLine]`` (typing sets ``__orig_class__``).
@dataclass(frozen=True)
class RowsPage(Generic[Row]):
    rows: list[Row]
    total: int
    offset: int
    limit: int

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.rows) < self.total
