"""A controller subprocess as the tests watch it: its JSON log lines, read as they come, a value
announced in them (a listening port), and SIGTERM with its exit code."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any


class JsonLogProcess:
    """Reads the process's stderr (one JSON object per line, `--log-json`) in the background."""

    def __init__(self, proc: asyncio.subprocess.Process, announced: str, timeout: float = 20.0) -> None:
        self.proc = proc
        self.timeout = timeout
        self.lines: list[dict[str, Any]] = []
        self.announced_key = announced
        self.announced: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"msg": raw.decode(errors="replace").rstrip()}
            self.lines.append(line)
            if self.announced_key in line and not self.announced.done():
                self.announced.set_result(int(line[self.announced_key]))

    def said(self, text: str) -> bool:
        return any(text in str(line.get("msg", "")) for line in self.lines)

    async def stop(self) -> int:
        """SIGTERM (as the kubelet sends it); the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), self.timeout)
        await self._reader
        return code
