"""A command in a real terminal: its own tmux server (private socket), read from the screen and
answered by keystrokes (the CLI's interactive prompts)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid

import pytest

from stratops.testing.wait import wait_for


class Terminal:
    """A command running in its own tmux server (private socket), read from the screen."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, width: int = 160, height: int = 50) -> None:
        if shutil.which("tmux") is None:
            pytest.skip("needs tmux")
        self.socket = f"stratops-test-{uuid.uuid4().hex[:8]}"
        # The pane stays open after the command exits (until closed) so its last screen can be read.
        script = f'{shlex.join(argv)}; echo "[exit $?]"; read _'
        self._tmux(
            "new-session",
            "-d",
            "-x",
            str(width),
            "-y",
            str(height),
            "-s",
            "t",
            "sh",
            "-c",
            script,
            env={**os.environ, **(env or {}), "TERM": "xterm-256color"},
        )

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, "-f", "/dev/null", *args], check=True, capture_output=True, text=True, env=env
        ).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-500", "-t", "t")

    def wait(self, text: str, timeout: float = 30) -> str:
        return wait_for(
            lambda: (s := self.screen()) and text in s and s, timeout=timeout, what=f"{text!r} on the screen"
        )

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-t", "t", "-l", text)
        self._tmux("send-keys", "-t", "t", "Enter")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)
