"""Alertmanager's own loader as the judge of a configuration: `amtool check-config` (v0.28.1,
the config package of the server that serves it) on a private temporary file.

Bounded work: at most `concurrency` checks run at once (the others wait their turn), each
is killed after `timeout` seconds, and the file (credentials in the clear) is removed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kupe.server.alertmanager.config import credentials, sanitise


class CheckerUnavailable(Exception):
    """The checker cannot run (binary missing, timed out): no verdict; the message says why."""


class ConfigChecker:
    """Checks rendered configurations with `amtool check-config`."""

    def __init__(self, amtool: Path, *, timeout: float = 10.0, concurrency: int = 4) -> None:
        self.amtool = amtool
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)

    @property
    def available(self) -> bool:
        return self.amtool.is_file() and os.access(self.amtool, os.X_OK)

    async def check(self, config: dict[str, Any]) -> str | None:
        """None when Alertmanager accepts `config`, else its message with the configuration's
        credentials replaced by `"<secret>"`. CheckerUnavailable when there is no verdict."""
        if not self.available:
            raise CheckerUnavailable(
                "the Alertmanager checker (amtool) is not installed on this server "
                "(kupe local install-alertmanager)"
            )
        async with self._slots:
            output, code = await self._run(yaml.safe_dump(config, sort_keys=False))
        if code == 0:
            return None
        return sanitise(_verdict(output), credentials(config))

    async def _run(self, text: str) -> tuple[str, int]:
        workdir = Path(tempfile.mkdtemp(prefix="kupe-amcheck-"))  # 0700
        try:
            path = workdir / "alertmanager.yml"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
            process = await asyncio.create_subprocess_exec(
                str(self.amtool),
                "check-config",
                str(path),
                cwd=workdir,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)},
            )
            try:
                out, _ = await asyncio.wait_for(process.communicate(), self.timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
                raise CheckerUnavailable(
                    f"the Alertmanager checker did not answer within {self.timeout:g}s"
                ) from None
            # Where the file was is nobody's business but Kupe's.
            text = out.decode(errors="replace").replace(str(workdir) + "/", "")
            return text[:4000], process.returncode or 0
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _verdict(output: str) -> str:
    """The loader's message out of amtool's report (`Checking '<file>'  FAILED: <why>`)."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if "FAILED:" in line:
            # The message may go on over indented lines (yaml's "unmarshal errors:").
            message = [line.split("FAILED:", 1)[1].strip()]
            for more in lines[index + 1 :]:
                if not more.strip() or more.startswith("amtool:"):
                    break
                message.append(more.strip())
            return " ".join(part for part in message if part)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[0] if lines else "Alertmanager refused the configuration"
