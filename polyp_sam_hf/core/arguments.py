"""Settings as dataclasses, parsed one way: every command (and `train.py`) declares its settings as a
dataclass whose fields carry their help, and `parse_arguments` turns a command line, and optionally
a YAML file (`--config`), into instances of them with transformers' `HfArgumentParser`.

Each field becomes `--name`, spelled as the field is (snake_case, as in transformers' example
scripts: `--model_name_or_path`, `--per_device_train_batch_size`); `metadata` passes to argparse
(`help`, `choices`, `aliases`, `action`), and three keys are this library's:

- `positional`: the field is a positional argument (`polyp-sam compare EVAL ...`);
- `rest`: the field takes everything after `--` (further `train.py` flags for `reproduce`);
- `repeat`: a `list[X] | None` field given once per value (`--box A --box B`).

Comma-separated lists (`--box_jitter 0,0.05`) are the field types `Floats` and `Names`: tuples
in code, one comma-separated word on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
from pathlib import Path

import yaml
from transformers import HfArgumentParser

from polyp_sam_hf.core.errors import ConfigError

# the YAML configs shipped in the package (a clone's `configs/` is a link to this folder)
PACKAGED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class Floats(tuple):
    """Numbers written "0,0.05,0.1" on the command line; a tuple of floats in code."""

    def __new__(cls, values=()):
        if isinstance(values, str):
            values = [v for v in values.split(",") if v.strip()]
        elif isinstance(values, (int, float)):
            values = [values]
        return super().__new__(cls, (float(v) for v in values))

    def __str__(self) -> str:
        return ",".join(f"{v:g}" for v in self)


class Names(tuple):
    """Names written "single,per-component" on the command line; a tuple of strings in code."""

    def __new__(cls, values=()):
        if isinstance(values, str):
            values = values.split(",")
        return super().__new__(cls, (str(v).strip() for v in values if str(v).strip()))

    def __str__(self) -> str:
        return ",".join(self)


# Settings renamed since earlier versions: old name -> new (the transformers example scripts' names where
# ours meant the same). An old flag or YAML key is answered with the new one; records that earlier
# versions wrote (a run's settings, an evaluation's) are read with the new names.
RENAMED_SETTINGS = {
    "model": "model_name_or_path",
    "num_epochs": "num_train_epochs",
    "max_steps": "max_train_steps",
    "per_device_batch_size": "per_device_train_batch_size",
    "lr_scheduler": "lr_scheduler_type",
    "save_every_steps": "checkpointing_steps",
    "eval_every_steps": "eval_steps",
    "num_workers": "dataloader_num_workers",
    "output": "output_dir",
    "batch_size": "per_device_eval_batch_size",
    "max_samples": "max_eval_samples",
    "prompt_modes": "prompt_mode",
    "min_component_area": "min_polyp_area",
    "overwrite": "overwrite_output_dir",
    "boxes": "boxes_file",
    "push_to_hub": "hub_dataset_id",
    "runs": "run",
}


def current_settings(values: dict) -> dict:
    """A settings dict an earlier version wrote, with today's names (`RENAMED_SETTINGS`)."""
    out = {}
    for key, value in values.items():
        new = RENAMED_SETTINGS.get(key, key)
        out[key if new in values else new] = value  # a record holding both names keeps the new one's value
    return out


def _suggestion(given: str, known: list[str]) -> str | None:
    """The known name meant by `given`: its new name (a renamed setting, any spelling), its snake_case
    spelling, or the closest known name."""
    dashes = "--" if given.startswith("--") else ""
    bare = given[len(dashes):].replace("-", "_")
    for candidate in (RENAMED_SETTINGS.get(bare), bare):
        if candidate and f"{dashes}{candidate}" in known and f"{dashes}{candidate}" != given:
            return f"{dashes}{candidate}"
    close = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(given: list[str], known) -> str:
    """` (did you mean --learning_rate?)` for the names meant by `given`, or nothing."""
    close = [m for g in given if (m := _suggestion(g, list(known)))]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def resolve_config_path(given: str | Path) -> Path:
    """`given` if it is a file; else, for `configs/...`, the config shipped with the package (so the
    README's `--config configs/demo.yaml` works from an installed wheel, in any folder).

    Raises:
        ConfigError: neither exists; the message lists the shipped configs.
    """
    path = Path(given)
    if path.is_file():
        return path
    if path.parts and path.parts[0] == "configs":
        packaged = PACKAGED_CONFIGS.joinpath(*path.parts[1:])
        if packaged.is_file():
            return packaged
    shipped = sorted(str(Path("configs") / p.relative_to(PACKAGED_CONFIGS)) for p in PACKAGED_CONFIGS.rglob("*.yaml")
                     if p.parent.name != "accelerate")
    raise ConfigError(f"Config file {path} not found. The library ships these (pass them as written, from any "
                      f"folder): {', '.join(shipped)}.")


def check_ranges(config, rules: dict[str, tuple[float | None, float | None]]) -> None:
    """Each named field lies in [low, high] (None: unbounded; a None value is allowed: unset)."""
    for name, (low, high) in rules.items():
        value = getattr(config, name)
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"in [{low}, {high}]"
            raise ConfigError(f"{name} {value!r} must be {bounds}.")


def check_choices(config) -> None:
    """Every field whose metadata lists `choices` holds one of them, whether it came from a flag
    (argparse checks too) or from a YAML file (argparse does not check defaults)."""
    for f in dataclasses.fields(config):
        choices = f.metadata.get("choices")
        value = getattr(config, f.name)
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(f"{f.name} {value!r} is not one of: {', '.join(map(str, choices))}.")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except where there is none to show (required flags, unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default is None or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


class _SnakeCaseOnly:
    """`add_argument` of an argparse group, without the kebab-case spelling (`--output_dir`) that
    `HfArgumentParser` registers beside each snake_case flag: one spelling for every command."""

    def __init__(self, target) -> None:
        self.target = target

    def add_argument(self, *names: str, **kwargs):
        return self.target.add_argument(*(n for n in names if not n.startswith("--") or "-" not in n[2:]), **kwargs)


class CommandParser(HfArgumentParser):
    """`HfArgumentParser` with one spelling per flag (snake_case), positional and after-`--` fields,
    no abbreviated flags (a typo is an error, never a silent match of a longer flag), and "did you
    mean" for a mistyped choice or a renamed flag."""

    def __init__(self, dataclass_types, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(dataclass_types, **kwargs)
        for action in self._actions:  # HfArgumentParser gives --no_X the help of --X
            negated = [o for o in action.option_strings if o.startswith("--no_")]
            if negated:
                action.help = f"Turn off --{negated[0][len('--no_'):]} (on by default)."

    @staticmethod
    def _parse_dataclass_field(parser: argparse.ArgumentParser, field: dataclasses.Field) -> None:
        if field.metadata.get("rest"):
            return  # filled from the arguments after `--` (`parse_arguments`)
        if field.metadata.get("positional"):
            item = field.type.__args__[0] if hasattr(field.type, "__args__") else field.type
            parser.add_argument(field.name, nargs="+", type=item, help=field.metadata.get("help"),
                                metavar=field.metadata.get("metavar"))
            return
        if field.metadata.get("repeat"):
            item = next(a for a in field.type.__args__ if a is not type(None)).__args__[0]  # list[X] | None -> X
            parser.add_argument(f"--{field.name}", *field.metadata.get("aliases", ()), action="append", type=item,
                                default=None, help=field.metadata.get("help"))
            return
        kwargs = {k: v for k, v in field.metadata.items() if k not in ("positional", "rest", "repeat")}
        if kwargs != dict(field.metadata):
            field = dataclasses.replace(field, metadata=kwargs)
        HfArgumentParser._parse_dataclass_field(_SnakeCaseOnly(parser), field)

    def error(self, message: str):
        if "invalid choice:" in message and "choose from" in message:
            bad = message.split("invalid choice:", 1)[1].split("(")[0].strip().strip("'")
            choices = [c.strip(" '") for c in message.split("choose from", 1)[1].strip(" )").split(",")]
            message += did_you_mean([bad], choices)
        super().error(message)


def parse_arguments(classes: type | tuple[type, ...], argv: list[str], prog: str, description: str | None = None,
                    config_file: bool = False) -> tuple:
    """Parse `argv` into one instance of each dataclass in `classes`.

    Args:
        config_file: also take `--config FILE.yaml` (flags override the file; its keys must be fields).

    Raises:
        ConfigError: an unknown flag or YAML key (with the closest known), or a value a dataclass
            refuses (its `__post_init__`).
    """
    classes = classes if isinstance(classes, tuple) else (classes,)
    argv = list(argv)
    rest: list[str] = []
    if "--" in argv:
        argv, rest = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    known = argparse.Namespace(config=None)
    if config_file:
        pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        pre.add_argument("--config")
        known, argv = pre.parse_known_args(argv)
    parser = CommandParser(classes, prog=prog, description=description)
    if config_file:  # listed for --help; read above, so it never reaches the namespace
        parser.add_argument("--config", metavar="FILE.yaml", default=argparse.SUPPRESS,
                            help="A YAML file of these settings (e.g. configs/paper/table2-b-full.yaml); flags "
                                 "override it.")
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    if known.config:
        path = resolve_config_path(known.config)
        from_file = yaml.safe_load(path.read_text()) or {}
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise ConfigError(f"{path}: unknown keys {unknown}{did_you_mean(unknown, names)}. "
                              f"Valid keys: {sorted(names)}.")
        parser.set_defaults(**from_file)
    known_flags = [o for a in parser._actions for o in a.option_strings]
    # an unknown flag first, before argparse's "required" errors: an old name is answered with its new one
    unknown_flags = [a.split("=")[0] for a in argv if a.startswith("--") and a.split("=")[0] not in known_flags]
    namespace, extra = parser.parse_known_args(argv) if not unknown_flags else (None, unknown_flags)
    if extra:
        flags = [a.split("=")[0] for a in extra if a.startswith("-")] or extra
        raise ConfigError(f"Unknown flag(s) {' '.join(flags)}{did_you_mean(flags, known_flags)}. "
                          f"`{prog} --help` lists them all.")
    rest_fields = [f.name for cls in classes for f in dataclasses.fields(cls) if f.metadata.get("rest")]
    if rest and not rest_fields:
        raise ConfigError(f"Unknown argument(s) after --: {' '.join(rest)}. `{prog} --help` lists the flags.")
    try:
        outputs = []
        for cls in classes:
            own = {f.name for f in dataclasses.fields(cls) if f.init}
            values = {k: v for k, v in vars(namespace).items() if k in own}
            values.update({name: tuple(rest) for name in rest_fields if name in own})
            outputs.append(cls(**values))
    except ValueError as err:  # a value from the file or a range a dataclass checks
        raise ConfigError(f"{known.config}: {err}" if known.config else str(err)) from None
    return tuple(outputs)
