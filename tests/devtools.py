"""Driving headless Chromium over the DevTools protocol (``--remote-debugging-pipe``: JSON
messages ended by NUL on file descriptors 3 and 4, no websocket library needed), for tests that
must act on a page: pick a file in an ``<input type=file>``, read the DOM afterwards."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Any

from browser import FLAGS, chromium


class Browser:
    """One headless Chromium with one page; ``call`` sends a command to that page."""

    def __init__(self) -> None:
        # chromium's helper processes may still write to the profile as the main one is killed
        self._profile = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        to_chrome, self._out = os.pipe()
        self._in, from_chrome = os.pipe()

        def pipes_as_3_and_4() -> None:
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        self.process = subprocess.Popen([chromium(), *FLAGS, f"--user-data-dir={self._profile.name}",
                                         "--remote-debugging-pipe", "about:blank"], preexec_fn=pipes_as_3_and_4,
                                        close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session, self.events = b"", 0, None, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Runtime.enable")
        self.call("Log.enable")

    def call(self, method: str, **params: Any) -> dict:
        """Send one command and wait for its result (events met meanwhile go to ``events``)."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params,
                   **({"sessionId": self.session} if self.session else {})}
        os.write(self._out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._in, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{expression} stayed false for {timeout} s")

    def pick_files(self, selector: str, paths: list[str]) -> None:
        """Choose ``paths`` in the file input at ``selector``, as a user does (fires 'change')."""
        root = self.call("DOM.getDocument")["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.call("DOM.setFileInputFiles", nodeId=node, files=paths)

    def console(self) -> list[str]:
        """Console and log messages so far (script errors, CSP violations)."""
        lines = [e["params"]["entry"]["text"] for e in self.events if e.get("method") == "Log.entryAdded"]
        lines += [" ".join(str(a.get("value")) for a in e["params"]["args"]) for e in self.events
                  if e.get("method") == "Runtime.consoleAPICalled"]
        return lines

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        os.close(self._in)
        os.close(self._out)
        self._profile.cleanup()
