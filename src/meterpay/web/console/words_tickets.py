"""The console's words for the work-order pages (报修工单): key -> (Chinese, English).
Merged into ``labels.WORDS``."""

from __future__ import annotations

from typing import Final

WORDS: Final[dict[str, tuple[str, str]]] = {
    "tickets.title": ("报修工单", "Work orders"),
    "tickets.none": ("没有符合条件的工单。", "No work orders here."),
    "tickets.all": ("全部", "all"),
    "tickets.show": ("筛选", "Filter"),
    "ticket.no": ("工单号", "No."),
    "ticket.filed": ("报修时间", "Filed"),
    "ticket.filed_by": ("报修人", "Filed by"),
    "ticket.by_owner": ("业主本人", "the owner"),
    "ticket.assignee": ("处理人", "Assigned to"),
    "ticket.description": ("问题描述", "Problem"),
    "ticket.photos": ("照片", "Photos"),
    "ticket.no_photos": ("没有照片。", "No photos."),
    "ticket.history": ("处理记录", "History"),
    "ticket.by": ("经办人", "By"),
    "ticket.move": ("处理", "Work on it"),
    "ticket.note": ("备注（业主可见）", "Note (the owner reads it)"),
    "ticket.assign_to": ("派给（用户名，留空为自己）", "Assign to (user name; empty: yourself)"),
    "ticket.final": ("工单已结束。", "This work order is closed."),
    "ticket.back": ("返回列表", "Back to the list"),
    "col.ticket": ("工单", "Order"),
    "col.description": ("问题", "Problem"),
    "ticket_state.open": ("待受理", "open"),
    "ticket_state.assigned": ("已派单", "assigned"),
    "ticket_state.in_progress": ("处理中", "in progress"),
    "ticket_state.done": ("已完成", "done"),
    "ticket_state.cancelled": ("已取消", "cancelled"),
    "move.assigned": ("派单", "Assign"),
    "move.in_progress": ("开始处理", "Start"),
    "move.done": ("完成", "Done"),
    "move.cancelled": ("取消工单", "Cancel"),
}
