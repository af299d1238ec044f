"""What the checks find: one line per finding (ok, info, warning, error), the records to add
beneath it, and the exit status (1 when any error)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal, TextIO

Level = Literal["ok", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    subject: str  # what was checked: "tls_cert_file", "example.com MX", "smtpd 0.0.0.0:25"
    text: str
    add: tuple[str, ...] = ()  # records or commands that would fix it, printed beneath
    label: str = "add"  # "add" (DNS records, settings) or "fix" (commands)


@dataclass
class Report:
    """Findings in the order the checks made them; printed as they come when ``out`` is given."""

    out: TextIO | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, level: Level, subject: str, text: str, add: tuple[str, ...] | list[str] = (),
            label: str = "add") -> None:
        finding = Finding(level, subject, text, tuple(add), label)
        self.findings.append(finding)
        if self.out is not None:
            print(format_finding(finding), file=self.out, flush=True)

    def ok(self, subject: str, text: str) -> None:
        self.add("ok", subject, text)

    def info(self, subject: str, text: str) -> None:
        self.add("info", subject, text)

    def warning(self, subject: str, text: str, add: tuple[str, ...] | list[str] = (), label: str = "add") -> None:
        self.add("warning", subject, text, add, label)

    def error(self, subject: str, text: str, add: tuple[str, ...] | list[str] = (), label: str = "add") -> None:
        self.add("error", subject, text, add, label)

    def section(self, title: str) -> None:
        if self.out is not None:
            print(f"\n{title}", file=self.out)

    def count(self, level: Level) -> int:
        return sum(f.level == level for f in self.findings)

    def summary(self) -> str:
        errors, warnings = self.count("error"), self.count("warning")
        return f"{errors} error(s), {warnings} warning(s)"

    def status(self) -> int:
        return 1 if self.count("error") else 0

    def about(self, subject: str) -> list[Finding]:
        return [f for f in self.findings if f.subject == subject]


_MARK = {"ok": "ok     ", "info": "info   ", "warning": "warning", "error": "ERROR  "}


def format_finding(finding: Finding) -> str:
    lines = [f"  {_MARK[finding.level]} {finding.subject}: {finding.text}"]
    if finding.add:
        lines.append(f"            {finding.label}:")
        lines.extend(f"              {line}" for line in finding.add)
    return "\n".join(lines)


def stdout_report() -> Report:
    return Report(out=sys.stdout)
