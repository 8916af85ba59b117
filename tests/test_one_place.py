"""Facts that must live in one module only: a second copy makes these tests fail."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from tlf.config import RESUMABLE
from tlf.preprocessing import DEFAULT_CROP_PCT, DEFAULT_IMAGE_SIZE

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for folder in ("framework", "plugins") for p in (ROOT / folder).rglob("*.py"))


def string_collections(path: Path) -> list[tuple[int, set[str]]]:
    """(line, the strings) of every tuple/list/set literal of strings in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if items:
                found.append((node.lineno, items))
    return found


def resumable_list(items: set[str]) -> bool:
    """A literal that is a list of resumable settings: three or more of RESUMABLE's names, and
    they are at least half of it (a list of every setting, such as a command's options, is not)."""
    shared = len(items & set(RESUMABLE))
    return shared >= 3 and 2 * shared >= len(items)


def test_resumable_settings_are_listed_only_in_config() -> None:
    """The settings a run may change on resume: tlf.config.RESUMABLE, nowhere else."""
    copies = [f"{path.relative_to(ROOT)}:{line}" for path in SOURCES if path != ROOT / "framework" / "config.py"
              for line, items in string_collections(path) if resumable_list(items)]
    assert copies == [], f"a second list of resumable settings: {copies}; use tlf.config.RESUMABLE"


def _name(node: ast.AST) -> str:
    """The trailing name of ``x``, ``self.x``, ``meta["x"]``, lower-cased."""
    if isinstance(node, ast.Name):
        return node.id.lower()
    if isinstance(node, ast.Attribute):
        return node.attr.lower()
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value).lower()
    return ""


def _is_255(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value in (255, 255.0)


def preprocessing_arithmetic(path: Path) -> list[str]:
    """Places in ``path`` that normalize pixels (``(x - mean) / std``, 255 times or over a mean/std),
    scale a short side (``short / min(h, w)``) or spell ImageNet's mean/std."""
    found = []
    tree = ast.parse(path.read_text(), str(path))
    over_mean_std = set()  # 255-arithmetic inside comprehensions over a mean/std
    for node in ast.walk(tree):
        if isinstance(node, (ast.ListComp, ast.GeneratorExp, ast.SetComp)) and \
                any(n in _name(g.iter) for g in node.generators for n in ("mean", "std")):
            over_mean_std |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            left, right = _name(node.left), _name(node.right)
            if isinstance(node.op, ast.Div) and "std" in right and isinstance(node.left, ast.BinOp) \
                    and isinstance(node.left.op, ast.Sub) and "mean" in _name(node.left.right):
                found.append(f"{node.lineno}: pixel normalization")
            if isinstance(node.op, (ast.Mult, ast.Div)) and (_is_255(node.left) or _is_255(node.right)) and (
                    id(node) in over_mean_std or any(n in left + right for n in ("mean", "std"))):
                found.append(f"{node.lineno}: normalization constants")
            if isinstance(node.op, ast.Div) and isinstance(node.right, ast.Call) and _name(node.right.func) == "min":
                found.append(f"{node.lineno}: short-side scale")
        if isinstance(node, ast.Constant) and node.value in (0.485, 0.229):
            found.append(f"{node.lineno}: ImageNet mean/std literal")
    return found


def test_preprocessing_arithmetic_lives_only_in_tlf_preprocessing() -> None:
    copies = [f"{path.relative_to(ROOT)}:{place}" for path in SOURCES if path != ROOT / "framework" / "preprocessing.py"
              for place in preprocessing_arithmetic(path)]
    assert copies == [], f"preprocessing written outside tlf.preprocessing: {copies}"


def other_message_channels(path: Path) -> list[str]:
    """Places in ``path`` that talk to the user past :mod:`tlf.messages`: stdlib ``logging``,
    ``warnings.warn`` (or a ``showwarning`` hook) and ``print``. ``warnings.catch_warnings`` is
    fine: it silences a library's warnings, it tells the user nothing."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        if any(m == "logging" or m.startswith("logging.") for m in modules):
            found.append(f"{node.lineno}: logging")
        if isinstance(node, ast.ImportFrom) and node.module == "warnings" and \
                {a.name for a in node.names} & {"warn", "warn_explicit", "showwarning"}:
            found.append(f"{node.lineno}: warnings")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "warnings" \
                and node.attr in ("warn", "warn_explicit", "showwarning"):
            found.append(f"{node.lineno}: warnings")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            found.append(f"{node.lineno}: print")
    return found


def test_messages_reach_the_user_through_tlf_messages_only() -> None:
    """One channel (tlf.messages: the run's Reporter, else stderr), so --quiet, logs and library
    users see the same messages; a second channel is how a skipped image came to be reported twice."""
    others = [f"{path.relative_to(ROOT)}:{place}" for path in SOURCES for place in other_message_channels(path)]
    assert others == [], f"messages past tlf.messages (use tlf.messages.notice or warn): {others}"


def test_the_guards_see_the_copies_they_forbid(tmp_path) -> None:
    """Each guard flags the kind of copy the code had before (so the tests above can fail)."""
    copy = tmp_path / "copy.py"
    copy.write_text("MEAN = (0.485, 0.456, 0.406)\n"
                    "def f(x, mean, std, h, w, s):\n    return (x / 255.0 - mean) / std, s / min(h, w)\n"
                    "M = [255.0 * v for v in mean]\n"
                    "ALLOWED = ('device', 'precision', 'workers', 'compile', 'cache')\n")
    assert sorted(p.split(": ")[1] for p in preprocessing_arithmetic(copy)) == [
        "ImageNet mean/std literal", "normalization constants", "pixel normalization", "short-side scale"]
    assert [items for _, items in string_collections(copy) if resumable_list(items)]
    channels = tmp_path / "channels.py"
    channels.write_text("import logging\nimport warnings\nfrom logging import getLogger\n"
                        "warnings.warn('skipped x')\nwarnings.showwarning = print\nprint('skipped x')\n"
                        "with warnings.catch_warnings():\n    warnings.simplefilter('ignore')\n")
    assert sorted(p.split(": ")[1] for p in other_message_channels(channels)) == [
        "logging", "logging", "print", "warnings", "warnings"]


def test_backbone_facts_live_only_in_the_meta() -> None:
    """A backbone's size, mean/std, interpolation, crop and feature dimension are stated by
    its BackboneMeta; the spec's ``weights`` is another fact (the source, not what was loaded)."""
    from dataclasses import fields

    from tlf.models import BackboneMeta
    from tlf.specs import BackboneSpec
    meta_facts = {f.name for f in fields(BackboneMeta)} - {"name", "weights"}
    assert meta_facts & {f.name for f in fields(BackboneSpec)} == set()


def test_backbone_families_take_their_meta_from_their_facts() -> None:
    """A built-in family's BackboneMeta is made from the facts its spec states (``BackboneMeta.of``),
    never from numbers of its own: one source for what the spec says before building and the meta after."""
    constructing = [f"{path.relative_to(ROOT)}:{number}" for path in SOURCES if "backbones" in path.parts
                    for number, line in enumerate(path.read_text().splitlines(), 1) if "BackboneMeta(" in line]
    assert constructing == []


def test_backbone_families_leave_the_weights_choice_to_the_loader() -> None:
    """"local file, else pretrained, else random" is decided in tlf.models.weights.load_weights."""
    deciding = [f"{path.relative_to(ROOT)}:{number}" for path in SOURCES if "backbones" in path.parts
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if "request.weights" in line or "request.pretrained" in line]
    assert deciding == []


# preprocessing settings a module could give a fallback of its own
PREPROCESSING_SETTINGS = {"image_size", "input_size", "resize", "resize_size", "crop", "crop_size", "crop_pct",
                          "interpolation"}
DEFAULT_IN_TEXT = re.compile(rf"(?<![\d.])({DEFAULT_IMAGE_SIZE}|{re.escape(str(DEFAULT_CROP_PCT))})(?![\d])")


def _literal(node: ast.AST | None) -> bool:
    """A constant other than None, or a tuple/list of constants."""
    if isinstance(node, ast.Constant):
        return node.value is not None
    return isinstance(node, (ast.Tuple, ast.List)) and bool(node.elts) and all(isinstance(e, ast.Constant) for e in node.elts)


def _argument_defaults(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.AST]]:
    args = node.args
    positional = args.posonlyargs + args.args
    pairs = list(zip(positional[len(positional) - len(args.defaults):], args.defaults))
    pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None]
    return [(a.arg, d) for a, d in pairs]


def default_preprocessing(path: Path) -> list[str]:
    """Places in ``path`` that state a fallback preprocessing of their own: the default image
    size or crop (224, 0.875) as a number or in text, or a literal default for a preprocessing
    setting (a field's, an argument's, ``.get("input_size", (3, 224, 224))``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float) \
                and node.value in (DEFAULT_IMAGE_SIZE, DEFAULT_CROP_PCT):
            found.append(f"{node.lineno}: the default size or crop {node.value}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DEFAULT_IN_TEXT.search(node.value):
            found.append(f"{node.lineno}: the default size or crop in text")
        elif isinstance(node, ast.AnnAssign) and _name(node.target) in PREPROCESSING_SETTINGS and _literal(node.value):
            found.append(f"{node.lineno}: a default {_name(node.target)}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [f"{node.lineno}: a default {name}" for name, default in _argument_defaults(node)
                      if name in PREPROCESSING_SETTINGS and _literal(default)]
        elif isinstance(node, ast.Call) and _name(node.func) == "get" and len(node.args) == 2 \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value in PREPROCESSING_SETTINGS \
                and _literal(node.args[1]):
            found.append(f"{node.lineno}: a fallback {node.args[0].value}")
    return found


def test_the_default_preprocessing_lives_only_in_tlf_preprocessing() -> None:
    """The fallback image size, crop and interpolation: tlf.preprocessing.DEFAULT_*, nowhere else
    (a backbone's own come from its library's recipe and that library's fallback)."""
    copies = [f"{path.relative_to(ROOT)}:{place}" for path in SOURCES if path != ROOT / "framework" / "preprocessing.py"
              for place in default_preprocessing(path)]
    assert copies == [], (f"a second default preprocessing: {copies}; use tlf.preprocessing.DEFAULT_IMAGE_SIZE, "
                          "DEFAULT_CROP_PCT or DEFAULT_INTERPOLATION")


def test_the_default_preprocessing_guard_sees_the_copies_it_forbids(tmp_path) -> None:
    """Each kind of copy the code had before is flagged."""
    copy = tmp_path / "copy.py"
    copy.write_text("def meta(cfg, image_size: int = 64):\n"
                    "    return int(cfg.get('input_size', (3, 224, 224))[-1]), cfg.get('crop_pct', 0.875)\n"
                    "class Request:\n    interpolation: str = 'bilinear'\n    crop_pct: float = 0.9\n"
                    "HINT = f'use e.g. --image-size 224 ({0})'\n")
    assert sorted(p.split(": ", 1)[1] for p in default_preprocessing(copy)) == [
        "a default crop_pct", "a default image_size", "a default interpolation", "a fallback crop_pct",
        "a fallback input_size", "the default size or crop 0.875", "the default size or crop 224",
        "the default size or crop 224", "the default size or crop in text"]


def slug_functions(path: Path) -> list[str]:
    """Functions in ``path`` whose name says they make names safe for files (``_slug``, ``slugify``, ...)."""
    return [f"{node.lineno}: {node.name}" for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "slug" in node.name.lower()]


def test_folder_names_from_user_text_are_made_only_in_tlf_paths(tmp_path) -> None:
    """Run directories, comparison cells and tune folders are named by tlf.paths.slug alone."""
    copies = [f"{path.relative_to(ROOT)}:{place}" for path in SOURCES if path != ROOT / "framework" / "paths.py"
              for place in slug_functions(path)]
    assert copies == [], f"a second slug function: {copies}; use tlf.paths.slug"
    copy = tmp_path / "copy.py"
    copy.write_text("import re\ndef _slug(text):\n    return re.sub('[^a-z]+', '_', text)\n")
    assert slug_functions(copy) == ["2: _slug"]


def test_slug_keeps_a_folder_name_safe() -> None:
    from tlf.paths import SLUG_LENGTH, slug
    assert slug("partial:conv5") == "partial_conv5"
    assert slug("timm:resnet18.a1_in1k") == "timm_resnet18.a1_in1k"
    assert slug("my-study") == "my-study"
    assert slug("..") == "x" and slug("/", empty="run") == "run"
    assert len(slug("a" * 300)) == SLUG_LENGTH
