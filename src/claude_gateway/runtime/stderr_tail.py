"""A bounded tail of a CLI's stderr, for error reports."""

from __future__ import annotations

from collections import deque


class StderrTail:
    """Keeps the last ``limit`` bytes (roughly; whole lines) of what the CLI wrote."""

    def __init__(self, limit: int = 256 * 1024) -> None:
        self.limit = limit
        self._lines: deque[str] = deque()
        self._size = 0

    def append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line.encode()) + 1
        while self._size > self.limit and len(self._lines) > 1:
            self._size -= len(self._lines.popleft().encode()) + 1
        if self._size > self.limit:  # one line longer than the limit: keep its end
            only = self._lines.pop().encode()[-(self.limit - 1):].decode(errors="ignore")
            self._lines.append(only)
            self._size = len(only.encode()) + 1

    def text(self, max_bytes: int | None = None) -> str:
        joined = "\n".join(self._lines)
        if max_bytes is not None and len(joined.encode()) > max_bytes:
            return joined.encode()[-max_bytes:].decode(errors="ignore")
        return joined

    def __len__(self) -> int:
        return self._size
