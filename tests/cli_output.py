"""What a command said apart from its progress lines: when output is not a terminal, every
phase of a run prints timestamped ``HH:MM:SS ...: started`` lines before an error can stop it."""
import re

PROGRESS = re.compile(r"^\d\d:\d\d:\d\d ")


def said(output: str) -> str:
    """``output`` without its timestamped progress lines."""
    return "".join(line for line in output.splitlines(keepends=True) if not PROGRESS.match(line))
