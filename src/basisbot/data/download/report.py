"""What a download did, file by file: fetched, already verified, missing at the source, or refused as corrupt."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Outcome:
    status: str   # fetched | kept | missing | corrupt | failed | pending
    label: str    # "BTCUSDT spot klines 2022-03"
    detail: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, o: Outcome) -> Outcome:
        self.outcomes.append(o)
        return o

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def problems(self) -> list[Outcome]:
        return sorted((o for o in self.outcomes if o.status in ("missing", "corrupt", "failed")),
                      key=lambda o: (o.status, o.label))

    def lines(self) -> list[str]:
        out = [f"{self.count('fetched')} fetched and verified, {self.count('kept')} already verified "
               f"(not fetched again), {len(self.problems)} missing or refused"]
        out += [f"note: {n}" for n in self.notes]
        out += [f"{o.status}: {o.label}: {o.detail}" for o in self.problems]
        return out
