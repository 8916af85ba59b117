"""MkDocs hook: two fixes to generated HTML.

- tlf's docstrings cross-reference in Sphinx's style (:class:`x`), which mkdocstrings shows
  as ``:class:`` followed by the code: keep the code, drop the role.
- mkdocs-click shows click 8.3's marker for "no default" (``Sentinel.UNSET``) as a default
  value: show nothing instead.
"""
from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):(<code>)~?")
NO_DEFAULT = "<code>Sentinel.UNSET</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub(r"\1", html).replace(NO_DEFAULT, "")
