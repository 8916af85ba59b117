"""The web page at ``/``: pick or drop images, see the top predictions as bars and the model's
metadata. Plain HTML and one inline script; it talks only to this server (``/models``,
``/v1/predict``), and its Content-Security-Policy allows nothing else: no external request, no
other script (the script is allowed by its SHA-256), previews from ``blob:`` URLs only. Text
from the server is set with ``textContent``, never parsed as HTML."""
from __future__ import annotations

import base64
import hashlib

SCRIPT = r"""
const $ = (id) => document.getElementById(id);
let models = [];
function headers() {
  const key = $("key").value.trim();
  return key ? {"Authorization": "Bearer " + key} : {};
}
function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (cls) node.className = cls;
  return node;
}
function showModel() {
  const m = models.find((x) => x.name === $("model").value);
  const box = $("meta");
  box.replaceChildren();
  if (!m) return;
  const rows = [["version", m.version], ["input", m.input_size.join(" x ") + " " + m.input_dtype],
    ["backbone", m.backbone], ["dataset", m.dataset], ["precision", m.precision],
    ["accuracy at export", m.val_accuracy == null ? "-" : (100 * m.val_accuracy).toFixed(1) + "%"],
    ["classes (" + m.classes.length + ")", m.classes.join(", ")]];
  for (const [k, v] of rows) { box.append(el("dt", k), el("dd", v == null ? "-" : String(v))); }
}
async function loadModels() {
  const r = await fetch("/models", {headers: headers()});
  const body = await r.json();
  if (!r.ok) { $("status").textContent = body.error ? body.error.message : "HTTP " + r.status; return; }
  models = body.models;
  $("model").replaceChildren(...models.map((m) => el("option", m.name)));
  showModel();
  $("status").textContent = "ready";
}
async function classify(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  $("status").textContent = "classifying " + files.length + " image(s)...";
  const url = "/v1/predict?top_k=" + encodeURIComponent($("topk").value) + "&model=" + encodeURIComponent($("model").value);
  const r = await fetch(url, {method: "POST", body: form, headers: headers()});
  const body = await r.json();
  const out = $("results");
  out.replaceChildren();
  if (!r.ok) { $("status").textContent = "error: " + body.error.message; return; }
  $("status").textContent = "done";
  body.predictions.forEach((p, i) => {
    const card = el("section", undefined, "card");
    const img = el("img");
    img.src = URL.createObjectURL(files[i]);
    card.append(img, el("h3", p.filename));
    p.labels.forEach((label, j) => {
      const row = el("div", undefined, "row");
      const bar = el("div", undefined, "bar");
      bar.style.width = (100 * p.probabilities[j]).toFixed(1) + "%";
      row.append(el("span", label, "label"), el("span", (100 * p.probabilities[j]).toFixed(1) + "%", "prob"), bar);
      card.append(row);
    });
    out.append(card);
  });
}
$("files").addEventListener("change", (e) => classify([...e.target.files]));
$("model").addEventListener("change", showModel);
$("key").addEventListener("change", loadModels);
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); classify([...e.dataTransfer.files]); });
loadModels();
"""

STYLE = """
body { font: 15px system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
#drop { border: 2px dashed #888; border-radius: 8px; padding: 2em; text-align: center; }
#drop.over { background: #eef; }
.card { display: inline-block; vertical-align: top; width: 17em; margin: 0.5em; padding: 0.5em; border: 1px solid #ccc; border-radius: 6px; }
.card img { max-width: 100%; max-height: 12em; display: block; margin: auto; }
.card h3 { font-size: 0.9em; overflow-wrap: anywhere; }
.row { position: relative; margin: 2px 0; padding: 1px 4px; }
.row .bar { position: absolute; left: 0; top: 0; bottom: 0; background: #9bd; z-index: -1; border-radius: 3px; }
.prob { float: right; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dt { font-weight: 600; }
#topk { width: 4em; }
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


CSP = (f"default-src 'none'; script-src {_sha256(SCRIPT)}; style-src {_sha256(STYLE)}; img-src blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tlf serve</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body>
<h1>tlf serve</h1>
<p>Model <select id="model"></select> top <input id="topk" type="number" min="1" value="5">
API key <input id="key" type="password" placeholder="if the server needs one" autocomplete="off">
<span id="status">loading...</span></p>
<label id="drop">Drop images here or <input id="files" type="file" accept="image/*" multiple></label>
<div id="results"></div>
<h2>Model</h2><dl id="meta"></dl>
<script>{SCRIPT}</script>
</body></html>
"""
