"""The console's words for background jobs (后台任务), each key prefixed ``job.`` (and the
page's own ``page.jobs``) so they never clash with the other word modules."""

from __future__ import annotations

from typing import Final

WORDS: Final[dict[str, tuple[str, str]]] = {
    "page.jobs": ("后台任务", "Jobs"),
    "job.kind": ("任务", "Job"),
    "job.kind.import.check": ("导入检查（试运行）", "Import check (dry run)"),
    "job.kind.import.apply": ("批量导入", "Import"),
    "job.kind.export.site": ("导出房间与账户", "Export units and accounts"),
    "job.kind.export.ledger": ("导出账户流水", "Export an account's ledger"),
    "job.kind.export.audit": ("导出审计日志", "Export the audit log"),
    "job.queued": ("排队中", "queued"),
    "job.running": ("进行中", "running"),
    "job.done": ("已完成", "done"),
    "job.failed": ("失败", "failed"),
    "job.stage.read": ("读取数据", "Reading"),
    "job.stage.check": ("检查", "Checking"),
    "job.stage.write": ("写入", "Writing"),
    "job.waiting": ("等待开始", "Waiting to start"),
    "job.progress": ("进度", "Progress"),
    "job.started_at": ("开始于", "started"),
    "job.finished_at": ("结束于", "finished"),
    "job.attempts": ("运行次数", "runs"),
    "job.by": ("发起人", "started by"),
    "job.download": ("下载", "Download"),
    "job.rows": ("行", "rows"),
    "job.leave": (
        "可以离开此页面，任务会在后台继续；之后在“后台任务”中查看结果。",
        "You may leave this page: the job goes on, and its result waits under Jobs.",
    ),
    "job.list_hint": (
        "您发起的导入与导出，最新的在前。",
        "The imports and exports you started, newest first.",
    ),
}
