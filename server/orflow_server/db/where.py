"""A WHERE clause built from optional filters, with every value bound as a $n parameter."""

from __future__ import annotations


class Where:
    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.params: list[object] = []

    def bind(self, value: object) -> str:
        """The placeholder for `value` (never its text in the SQL)."""
        self.params.append(value)
        return f"${len(self.params)}"

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def sql(self) -> str:
        return ("WHERE " + " AND ".join(self.clauses)) if self.clauses else ""
