"""Search spaces: a YAML mapping of run setting -> distribution, checked before any trial runs.

```yaml
lr: loguniform(1e-5, 1e-2)        # float on a log scale
weight_decay: uniform(0.0, 0.1)   # float
epochs: int(3, 8)                 # integer (int(low, high, step) for a step)
batch_size: logint(16, 128)       # integer on a log scale
policy: [transfer, partial:conv5, partial:conv4]   # categorical
augment: choice(none, basic)      # categorical, the other spelling
image_size: 128                   # fixed for every trial
```

The distributions are Optuna's (FloatDistribution, IntDistribution, CategoricalDistribution);
this module only reads the file, maps each line to one, and checks every bound and choice
against :class:`tlf.config.RunConfig` and the plugin registry.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config import RunConfig, read_config_file
from ..errors import TlfError
from ..registry import get_registry, suggest

FUNCTIONS = ("uniform", "loguniform", "int", "logint", "choice")
NOT_SEARCHABLE = ("out", "name", "loggers")  # where runs go and what they report to: not hyperparameters
PLUGIN_KINDS = {"dataset": "datasets", "backbone": "backbones", "policy": "policies"}
CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.S)
EXAMPLE = "e.g. 'lr: loguniform(1e-5, 1e-2)', 'epochs: int(3, 8)' or 'policy: [transfer, partial:conv5]'"


@dataclass(frozen=True)
class SearchSpace:
    """Distributions (setting -> optuna distribution) and settings fixed for every trial."""

    distributions: dict[str, Any]
    fixed: dict[str, Any]
    source: str

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The settings of one trial: sampled from the distributions, plus the fixed ones."""
        import optuna.distributions as od
        chosen = dict(self.fixed)
        for name, dist in self.distributions.items():
            if isinstance(dist, od.CategoricalDistribution):
                chosen[name] = trial.suggest_categorical(name, dist.choices)
            elif isinstance(dist, od.IntDistribution):
                chosen[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                chosen[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log)
        return chosen


def _kind_of(name: str) -> str:
    """'int', 'float', 'bool' or 'str': what RunConfig holds in setting ``name``."""
    annotation = str(next(f.type for f in fields(RunConfig) if f.name == name))
    for kind in ("bool", "int", "float"):
        if re.search(rf"\b{kind}\b", annotation):
            return kind
    return "str"


def _check_value(name: str, value: Any, source: str) -> None:
    """One value of setting ``name``: of the right type, valid for RunConfig, a known plugin."""
    kind = _kind_of(name)
    bad_type = (kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float)))) or \
        (kind == "int" and (isinstance(value, bool) or not isinstance(value, int))) or \
        (kind == "bool" and not isinstance(value, bool)) or (kind == "str" and not isinstance(value, str))
    if bad_type and value is not None:
        raise TlfError(f"{source}: {name} takes a {kind}, got {value!r}", hint=EXAMPLE)
    try:
        dataclasses.replace(RunConfig(), **{name: value}).checked()
    except TypeError as exc:
        raise TlfError(f"{source}: invalid {name} {value!r}: {exc}", hint=EXAMPLE) from None
    except TlfError as exc:
        raise TlfError(f"{source}: {exc.message}", hint=exc.hint) from None
    if value is None:
        return
    if name in PLUGIN_KINDS:
        get_registry().resolve(PLUGIN_KINDS[name], value)
    elif name == "augment":
        for part in value.split("+"):
            get_registry().resolve("augmentations", part)


def _number(text: str) -> Any:
    """``"1e-3"`` -> 0.001, ``"5"`` -> 5; other text as it is. (YAML 1.1 reads 1e-3 as text.)"""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _coerce(name: str, value: Any) -> Any:
    """A value of a numeric setting given as text or as an int where a float is meant."""
    kind = _kind_of(name)
    if kind in ("int", "float") and isinstance(value, str):
        value = _number(value.strip())
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    return value


def _arguments(name: str, text: str, source: str) -> list[Any]:
    import yaml
    try:
        values = yaml.safe_load(f"[{text}]")
    except yaml.YAMLError:
        raise TlfError(f"{source}: cannot read the arguments of {name}: ({text})", hint=EXAMPLE) from None
    return [_number(v) if isinstance(v, str) else v for v in values]


def _distribution(name: str, value: Any, source: str) -> Any | None:
    """The optuna distribution ``value`` describes, or None for a fixed value."""
    import optuna.distributions as od
    if isinstance(value, list):
        return _categorical(name, value, source)
    if not isinstance(value, str) or not CALL.match(value):
        _check_value(name, _coerce(name, value), source)
        return None
    function, text = CALL.match(value).groups()
    args = _arguments(name, text, source)
    if function == "choice":
        return _categorical(name, args, source)
    if function not in FUNCTIONS:
        close = suggest(function, list(FUNCTIONS))
        raise TlfError(f"{source}: unknown distribution {function!r} for {name}"
                       + (f"; did you mean {close[0]!r}?" if close else ""),
                       hint=f"use one of {', '.join(FUNCTIONS)}, or a [list] of choices")
    integer = function in ("int", "logint")
    wanted = 3 if function == "int" else 2
    if len(args) not in (2, wanted) or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        form = "int(low, high[, step])" if function == "int" else f"{function}(low, high)"
        raise TlfError(f"{source}: {name}: {value!r} needs numbers as {form}", hint=EXAMPLE)
    low, high = args[0], args[1]
    if integer and not all(isinstance(a, int) for a in args):
        raise TlfError(f"{source}: {name}: {function}() takes whole numbers, got {value!r}",
                       hint=f"write {name}: uniform({low}, {high}) for a float")
    if low > high:
        raise TlfError(f"{source}: {name}: low {low} is above high {high}", hint=f"write {function}({high}, {low})")
    if function.startswith("log") and low <= 0:
        raise TlfError(f"{source}: {name}: {function}() needs a positive low bound, got {low}",
                       hint=f"use uniform({low}, {high}), or a low bound above 0")
    kind = _kind_of(name)
    if integer and kind != "int" and kind != "float":
        raise TlfError(f"{source}: {name} takes a {kind}, not numbers", hint="give it a [list] of choices")
    if not integer and kind != "float":
        raise TlfError(f"{source}: {name} takes whole numbers; {function}() draws floats",
                       hint=f"write {name}: int({int(low)}, {int(high)})")
    for bound in (low, high):
        _check_value(name, float(bound) if kind == "float" else bound, source)
    if integer:
        return od.IntDistribution(low, high, log=function == "logint", step=args[2] if len(args) == 3 else 1)
    return od.FloatDistribution(float(low), float(high), log=function == "loguniform")


def _categorical(name: str, choices: list[Any], source: str) -> Any:
    import optuna.distributions as od
    if not choices:
        raise TlfError(f"{source}: {name} has no choices", hint=EXAMPLE)
    choices = [_coerce(name, choice) for choice in choices]
    for choice in choices:
        _check_value(name, choice, source)
    return od.CategoricalDistribution(choices)


def parse_space(data: dict[str, Any], source: str = "search space") -> SearchSpace:
    """A search space from its mapping; every error is a one-line TlfError."""
    if not isinstance(data, dict) or not data:
        raise TlfError(f"{source} holds no settings to search", hint=EXAMPLE)
    known = [f.name for f in fields(RunConfig)]
    distributions, fixed = {}, {}
    for name, value in data.items():
        if name not in known:
            close = suggest(str(name), known)
            raise TlfError(f"{source}: {name!r} is not a run setting" + (f"; did you mean {close[0]!r}?" if close else ""),
                           hint="'tlf train --help' lists the settings")
        if name in NOT_SEARCHABLE:
            raise TlfError(f"{source}: {name} cannot be searched", hint=f"pass --{name} to 'tlf tune' instead")
        distribution = _distribution(name, value, source)
        if distribution is None:
            fixed[name] = _coerce(name, value)
        else:
            distributions[name] = distribution
    if not distributions:
        raise TlfError(f"{source} fixes every setting: nothing to search", hint=EXAMPLE)
    return SearchSpace(distributions, fixed, source)


def load_space(path: str | Path) -> SearchSpace:
    """A search space from a YAML (or JSON) file."""
    if not Path(path).is_file():
        raise TlfError(f"search space file {path} does not exist", hint=f"pass a YAML file to --space; {EXAMPLE}")
    return parse_space(read_config_file(path), source=str(path))
