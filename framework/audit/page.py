"""audit.html: one self-contained page (the report's style and Content-Security-Policy; every
thumbnail a data: URI) with each pair of copies side by side, each suspected label error
beside examples of its class and of the suggested one, and the other findings."""
from __future__ import annotations

import base64
import io
from collections import Counter
from datetime import datetime, timezone

import numpy as np

from .. import __version__
from ..insight.templates import HEAD
from .embeddings import Embeddings
from .findings import DESCRIPTIONS, KINDS, Finding

SHOWN = 60  # findings shown per kind (issues.csv has them all)
EXAMPLES = 3  # images of each class beside a suspected label error
THUMBNAIL = 112  # px, the long side
PAIRED = ("conflict", "leak", "duplicate")

AUDIT = HEAD + """<style>figure { display: inline-block; margin: 2px 6px 2px 0; vertical-align: top; font-size: 12px; max-width: 124px; }
figure img { display: block; } figcaption { overflow-wrap: anywhere; white-space: normal; } td.imgs { white-space: nowrap; }</style>
<header><h1>{{ title }}</h1><p class="muted">{{ directory }} · tlf {{ version }} · written {{ written }}</p>
<nav>{% for kind in kinds %}<a href="#{{ kind.name }}">{{ kind.name }} ({{ kind.count }})</a>{% endfor %}</nav></header>
<section id="summary"><h2>Summary</h2>
<p>{{ summary.images }} images ({{ summary.train }} training, {{ summary.val }} validation) in {{ summary.classes }} classes,
embedded by {{ summary.backbone }} (frozen pass: {{ summary.engine }}) in {{ summary.seconds }} s.</p>
<table><tr><th>finding</th><th>count</th><th>what it means</th></tr>
{% for kind in kinds %}<tr><td><a href="#{{ kind.name }}">{{ kind.name }}</a></td><td class="n">{{ kind.count }}</td><td>{{ kind.description }}</td></tr>{% endfor %}
</table>{% for note in notes %}<p class="warn">{{ note }}</p>{% endfor %}</section>
{% for kind in kinds %}<section id="{{ kind.name }}"><h2>{{ kind.name }}</h2><p>{{ kind.description }}{% if kind.count > kind.rows|length %};
the first {{ kind.rows|length }} of {{ kind.count }} (issues.csv has them all){% endif %}.</p>
<table class="findings"><tr><th>score</th><th>images</th><th>label</th><th>evidence</th></tr>
{% for row in kind.rows %}<tr><td class="n">{{ "%.3f"|format(row.score) }}</td><td class="imgs">
{% for figure in row.figures %}<figure>{% if figure.src %}<img alt="{{ figure.caption }}" src="{{ figure.src }}">{% endif %}<figcaption>{{ figure.caption }}</figcaption></figure>{% endfor %}</td>
<td>{{ row.label }}{% if row.other_label and row.other_label != row.label %} / {{ row.other_label }}{% endif %}{% if row.suggested %} → <b>{{ row.suggested }}</b>{% endif %}</td><td>{{ row.detail }}</td></tr>{% endfor %}
</table></section>{% endfor %}
</body></html>
"""


class Thumbnails:
    """JPEG data: URIs of the audited images by their path (key), made on first use."""

    def __init__(self, data: Embeddings) -> None:
        self.data = data
        self.where = {data.images(s).key(i): (s, i) for s in ("train", "val") for i in range(len(data.images(s)))}

    def __call__(self, path: str) -> str | None:
        if path not in self.where:
            return None
        from PIL import Image
        split, i = self.where[path]
        image = Image.fromarray(np.asarray(self.data.images(split).load(i)))
        image.thumbnail((THUMBNAIL, THUMBNAIL))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def examples(self, label: str) -> list[str]:
        """The first :data:`EXAMPLES` training images of class ``label``."""
        c = self.data.splits.classes.index(label)
        members = np.flatnonzero(self.data.labels("train") == c)[:EXAMPLES]
        return [self.data.train_images.key(int(i)) for i in members]


def _figure(thumbnails: Thumbnails, path: str, caption: str) -> dict:
    return {"src": thumbnails(path), "caption": caption}


def _row(finding: Finding, thumbnails: Thumbnails) -> dict:
    figures = [_figure(thumbnails, finding.path, f"{finding.split} · {finding.path.rsplit('/', 1)[-1]}")] \
        if finding.path else []
    if finding.kind in PAIRED:
        figures.append(_figure(thumbnails, finding.other_path,
                               f"{finding.other_split} · {finding.other_label} · {finding.other_path.rsplit('/', 1)[-1]}"))
    if finding.kind == "label":
        figures += [_figure(thumbnails, p, f"a {finding.label}") for p in thumbnails.examples(finding.label)]
        figures += [_figure(thumbnails, p, f"a {finding.suggested}") for p in thumbnails.examples(finding.suggested)]
    return {"score": finding.score, "figures": figures, "label": finding.label, "other_label": finding.other_label,
            "suggested": finding.suggested, "detail": finding.detail}


def render(findings: list[Finding], data: Embeddings, summary: dict, notes: list[str], directory: str) -> str:
    """The page's HTML."""
    import jinja2
    thumbnails = Thumbnails(data)
    counts = Counter(f.kind for f in findings)
    kinds = [{"name": kind, "count": counts[kind], "description": DESCRIPTIONS[kind],
              "rows": [_row(f, thumbnails) for f in [f for f in findings if f.kind == kind][:SHOWN]]}
             for kind in KINDS if counts[kind]]
    template = jinja2.Environment(autoescape=True).from_string(AUDIT)
    return template.render(title=f"Audit of {summary['dataset']}", directory=directory, version=__version__,
                           written=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), kinds=kinds,
                           summary=summary, notes=notes)
