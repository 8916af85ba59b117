"""MkDocs hook: tlf's docstrings cross-reference in Sphinx's style (:class:`x`), which
mkdocstrings shows as ``:class:`` followed by the code; keep the code, drop the role."""
from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(<code>)~?")


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(r"\1", html)
