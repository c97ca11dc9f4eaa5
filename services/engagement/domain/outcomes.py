"""What outreach achieved: of the items worked to completion, how many reached and converted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OutcomeCounts:
    completed: int
    reached: int
    converted: int

    @property
    def reach_rate(self) -> float | None:
        return _share(self.reached, self.completed)

    @property
    def conversion_rate(self) -> float | None:
        return _share(self.converted, self.completed)


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
