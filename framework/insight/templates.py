"""Jinja2 templates of report.html (run page) and the comparison page. Every value is
autoescaped; images are data: URIs; the Content-Security-Policy forbids any request."""
from __future__ import annotations

HEAD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 0 1.2em 3em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; }
nav a { margin-right: .8em; } .muted { color: #666; } .warn { color: #a40; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: 2px 9px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f4f4f4; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.this { background: #fff3c4; } .scroll { max-height: 32em; overflow: auto; display: inline-block; }
dl.kv { display: grid; grid-template-columns: repeat(3, max-content minmax(8em, max-content)); gap: 2px 10px; }
dl.kv dt { font-weight: 600; } dl.kv dd { margin: 0 1.5em 0 0; overflow-wrap: anywhere; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; } .metrics td { font-size: 1.1em; }
</style></head><body>
"""

RUN = HEAD + """<header><h1>{{ title }}</h1>
<p class="muted">{{ run_dir }} · tlf {{ version }} · report written {{ written }}</p>
<nav>{% for id, name in sections %}<a href="#{{ id }}">{{ name }}</a>{% endfor %}</nav></header>

<section id="headline"><h2>Result</h2>
<table class="metrics">{% for label, text in headline %}<tr><th>{{ label }}</th><td>{{ text }}</td></tr>{% endfor %}</table></section>

<section id="training"><h2>Training</h2>
{% if summary %}<p>{{ summary.epochs }} of {{ summary.planned_epochs }} epochs in {{ summary.seconds }} s on {{ summary.device }}
({{ summary.precision }}); best validation {{ "mAP" if summary.best_metric == "val_map" else "accuracy" }} {{ "%.4f"|format(summary.best_val_accuracy or 0) }} at epoch {{ summary.best_epoch }}.</p>
{% else %}<p class="warn">The run has not finished (no summary.json).</p>{% endif %}
{% if images.curves %}<img alt="training curves" src="{{ images.curves }}">{% endif %}</section>

{% for html in before_metrics %}{{ html }}
{% endfor %}
<section id="metrics"><h2>Final metrics</h2>
{% if evaluation %}<table class="metrics">{% for key, value in metrics %}<tr><th>{{ key }}</th><td class="n">{{ value }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">Not evaluated yet: run <code>tlf evaluate {{ run_dir }}</code>.</p>{% endif %}</section>

{% if summary.test %}<section id="test"><h2>Test split</h2>
<p>The checkpoint picked on validation ({{ summary.best_metric }} {{ "%.4f"|format(summary.best_val_accuracy or 0) }}, epoch {{ summary.test.epoch }})
scored once on {{ summary.test.images }} held-out test images, which chose nothing: the figures to quote.</p>
<table class="metrics">{% for key, value in test %}<tr><th>test {{ key }}</th><td class="n">{{ value }}</td></tr>{% endfor %}</table></section>{% endif %}

{% for html in after_metrics %}{{ html }}
{% endfor %}
<section id="data"><h2>Data</h2>
{% if data %}<p>{{ data.classes }} classes{% if data.split %} · {{ data.split }}{% endif %}{% if data.unreadable %}
 · <span class="warn">{{ data.unreadable }} unreadable file(s) skipped</span>{% endif %}.
Image sizes (width × height, sampled {{ data.val_sizes.sampled }} validation images):
{{ data.val_sizes.width_min }}–{{ data.val_sizes.width_max }} × {{ data.val_sizes.height_min }}–{{ data.val_sizes.height_max }}
px, median {{ data.val_sizes.width_median }} × {{ data.val_sizes.height_median }}.</p>
<div class="scroll"><table><tr><th>class</th><th>train</th><th>val</th></tr>
{% for name, train, val in counts %}<tr><td>{{ name }}</td><td class="n">{{ train }}</td><td class="n">{{ val }}</td></tr>{% endfor %}
</table></div>{% else %}<p class="muted">No data summary yet: run <code>tlf evaluate {{ run_dir }}</code>.</p>{% endif %}</section>

<section id="strategy"><h2>Strategy</h2>
<p>This run used <b>{{ policy }}</b>. The four strategies:</p>
<table>{% for name, description in strategies %}<tr{% if name == policy_family %} class="this"{% endif %}>
<th>{{ name }}</th><td>{{ description }}</td></tr>{% endfor %}</table>
{% if inspect %}<p>What {{ policy }} froze on {{ inspect.backbone }} at {{ inspect.image_size }} px (as <code>tlf inspect</code> shows it):</p>
<table><tr><th>stage</th><th>output</th><th>params</th><th>trainable</th><th>state</th></tr>
{% for row in inspect.rows %}<tr><td>{{ row.name }}</td><td>{{ row.output_shape|join('×') }}</td>
<td class="n">{{ "{:,}".format(row.params) }}</td><td class="n">{{ "{:,}".format(row.trainable) }}</td><td>{{ row.state }}</td></tr>{% endfor %}
<tr><th>total</th><td></td><td class="n">{{ "{:,}".format(inspect.totals.params) }}</td>
<td class="n">{{ "{:,}".format(inspect.totals.trainable) }}</td><td></td></tr></table>
{% else %}<p class="muted">{{ inspect_error }}</p>{% endif %}</section>

<section id="export"><h2>Export</h2>
{% if exports %}<table>{% for name, size in exports %}<tr><td>{{ name }}</td><td class="n">{{ size }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted">Not exported: <code>tlf export {{ run_dir }}</code> writes model.onnx.</p>{% endif %}</section>

<section id="settings"><h2>Settings</h2>
<details><summary>Every setting of the run ({{ settings|length }}, as in config.yaml)</summary>
<dl class="kv">{% for key, value in settings %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}</dl></details></section>
</body></html>
"""

COMPARE = HEAD + """<header><h1>{{ title }}</h1><p class="muted">{{ directory }} · tlf {{ version }} · written {{ written }}</p></header>
<section id="table"><h2>Comparison</h2>
<table><tr>{% for column in header %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>
{% if note %}<p class="muted">{{ note }}</p>{% endif %}</section>
<section id="curves"><h2>Curves</h2>{% if image %}<img alt="validation accuracy of every run" src="{{ image }}">{% endif %}</section>
<section id="runs"><h2>Runs</h2><table><tr><th>run</th><th>backbone</th><th>policy</th><th>seed</th><th>best val acc</th></tr>
{% for run in runs %}<tr><td><a href="{{ run.link }}">{{ run.name }}</a></td><td>{{ run.backbone }}</td><td>{{ run.policy }}</td>
<td class="n">{{ run.seed }}</td><td class="n">{{ run.accuracy }}</td></tr>{% endfor %}</table></section>
</body></html>
"""

TUNE = HEAD + """<header><h1>{{ title }}</h1>
<p class="muted">{{ directory }} · storage {{ storage }} · tlf {{ version }} · written {{ written }}</p>
<nav>{% for id, name in sections %}<a href="#{{ id }}">{{ name }}</a>{% endfor %}</nav></header>
{% if note %}<p class="warn">{{ note }}</p>{% endif %}

<section id="best"><h2>Best trial</h2>
{% if best %}<p>Trial {{ best.number }}: validation accuracy <b>{{ best.value }}</b>{% if best.link %}
(<a href="{{ best.link }}">its run</a>){% endif %}.</p>
<table>{% for key, value in best.params %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
{% if best_config %}<p>Its settings, <code>{{ best.config_file }}</code>: <code>tlf train --config {{ best.config_file }}</code> repeats it.</p>
<details><summary>best.yaml</summary><pre id="best-config">{{ best_config }}</pre></details>{% endif %}
{% else %}<p class="warn">No trial has finished: no best config yet.</p>{% endif %}</section>

<section id="trials"><h2>Trials</h2><p>{{ counts }}</p>
<div class="scroll"><table id="trial-table"><tr><th>trial</th><th>state</th><th>val acc</th>{% for name in params %}<th>{{ name }}</th>{% endfor %}
<th>epochs</th><th>seconds</th><th>run</th></tr>
{% for t in trials %}<tr{% if t.best %} class="this"{% endif %}><td class="n">{{ t.number }}</td><td>{{ t.state }}</td><td class="n">{{ t.value }}</td>
{% for value in t.params %}<td class="n">{{ value }}</td>{% endfor %}<td class="n">{{ t.epochs }}</td><td class="n">{{ t.duration }}</td>
<td>{% if t.link %}<a href="{{ t.link }}">{{ t.run }}</a>{% else %}{{ t.run }}{% endif %}{% if t.error %} <span class="warn">{{ t.error }}</span>{% endif %}</td></tr>{% endfor %}
</table></div></section>

<section id="history"><h2>Optimization history</h2>
{% if images.history %}<img alt="optimization history" src="{{ images.history }}">{% else %}<p class="muted">No finished trial yet.</p>{% endif %}</section>

<section id="importance"><h2>Hyperparameter importance</h2>
{% if images.importance %}<p>Optuna's fANOVA estimate over the finished trials: the share of the variation in validation accuracy each setting explains.</p>
<img alt="hyperparameter importance" src="{{ images.importance }}">
{% else %}<p class="muted">Needs two finished trials with different settings.</p>{% endif %}</section>
</body></html>
"""
