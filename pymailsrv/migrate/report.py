"""What ``import-config`` did with each setting it read: carried as it was, translated into
pymailsrv's terms, or not carried (and why). Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["carried", "translated", "not carried"]
ORDER: tuple[Status, ...] = ("carried", "translated", "not carried")


@dataclass(frozen=True, slots=True)
class Item:
    status: Status
    source: str  # "main.cf:12 smtpd_banner", "dovecot-sql.conf.ext:4 password_query"
    text: str
    blocking: bool = False  # the site cannot be served as it was until this is dealt with


@dataclass
class Report:
    items: list[Item] = field(default_factory=list)

    def carried(self, source: str, text: str = "") -> None:
        self.items.append(Item("carried", source, text))

    def translated(self, source: str, text: str) -> None:
        self.items.append(Item("translated", source, text))

    def dropped(self, source: str, why: str, *, blocking: bool = False) -> None:
        self.items.append(Item("not carried", source, why, blocking))

    @property
    def blocking(self) -> list[Item]:
        return [i for i in self.items if i.blocking]

    def of(self, status: Status) -> list[Item]:
        return [i for i in self.items if i.status == status]

    def render(self) -> str:
        lines: list[str] = []
        for status in ORDER:
            items = self.of(status)
            lines.append(f"{status} ({len(items)}):")
            for item in items:
                mark = "  !! " if item.blocking else "  "
                lines.append(f"{mark}{item.source}" + (f": {item.text}" if item.text else ""))
        counts = ", ".join(f"{len(self.of(s))} {s}" for s in ORDER)
        if self.blocking:
            lines.append(f"import-config: {counts}; {len(self.blocking)} marked !! must be dealt with "
                         "before pymailsrv serves this site as it was")
        else:
            lines.append(f"import-config: {counts}")
        return "\n".join(lines) + "\n"
