"""What a notification says: a title and a few lines of markdown from a run's facts, in the
channel's language (English or Simplified Chinese). Each robot wraps the same text."""

from __future__ import annotations

from typing import Any

MARKS = {
    "succeeded": "✅",
    "recovered": "🔁",
    "failed": "❌",
    "timed_out": "⏱",
    "cancelled": "⛔",
    "interrupted": "⛔",
    "test": "🔔",
}
WORDS = {
    "en": {
        "succeeded": "succeeded",
        "recovered": "recovered (succeeded after failing)",
        "failed": "failed",
        "timed_out": "timed out",
        "cancelled": "was cancelled",
        "interrupted": "was interrupted",
        "test": "a test message from toolrun",
        "run": "Run",
        "duration": "Duration",
        "started_by": "Started by",
        "failed_step": "Failed step",
        "exit": "exit",
        "last_lines": "Last lines",
        "test_body": "If you can read this, toolrun can reach this channel.",
    },
    "zh_CN": {
        "succeeded": "成功",
        "recovered": "已恢复（失败后再次成功）",
        "failed": "失败",
        "timed_out": "超时",
        "cancelled": "已取消",
        "interrupted": "已中断",
        "test": "toolrun 测试消息",
        "run": "运行",
        "duration": "耗时",
        "started_by": "发起人",
        "failed_step": "失败步骤",
        "exit": "退出码",
        "last_lines": "最后几行输出",
        "test_body": "能看到这条消息，说明 toolrun 可以发送到这个频道。",
    },
}
ORIGINS = {
    "en": {"cli": "terminal", "daemon": "API", "schedule": "schedule", "hook": "hook"},
    "zh_CN": {"cli": "终端", "daemon": "API", "schedule": "定时", "hook": "钩子"},
}


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {rest}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes}m"


def title(facts: dict[str, Any], language: str = "en") -> str:
    words = WORDS[language]
    event = str(facts["event"])
    if event == "test":
        return f"{MARKS['test']} {words['test']}"
    return f"{MARKS.get(event, '•')} {facts['toolchain']} {words.get(event, event)}"


def markdown(
    facts: dict[str, Any], language: str = "en", *, link: str | None = None, mentions: str = ""
) -> str:
    """The message's body in the markdown the robots share (headings, lists, quotes, links)."""
    words = WORDS[language]
    lines = [f"### {title(facts, language)}", ""]
    if facts["event"] == "test":
        lines.append(words["test_body"])
    else:
        run = f"[{facts['run_id']}]({link})" if link else str(facts["run_id"])
        origin = ORIGINS[language].get(str(facts.get("origin")), str(facts.get("origin")))
        who = f"{facts.get('requester') or '-'} ({origin})"
        lines += [
            f"- {words['run']}: {run}",
            f"- {words['duration']}: {duration_text(facts.get('duration'))}",
            f"- {words['started_by']}: {who}",
        ]
        if facts.get("failed_step"):
            code = facts.get("failed_exit")
            exit_text = f" ({words['exit']} {code})" if code is not None else ""
            lines.append(f"- {words['failed_step']}: {facts['failed_step']}{exit_text}")
        if facts.get("last_lines"):
            lines += ["", f"{words['last_lines']}:", ""]
            lines += [f"> {line}" for line in facts["last_lines"]]
    if mentions:
        lines += ["", mentions]
    return "\n".join(lines)
