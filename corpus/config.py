"""Pipeline configuration: load a YAML file safely, apply ``--set`` overrides, validate everything
before any work starts.

The shape (see ``corpus init`` for a commented example)::

    name: web
    output_dir: runs/web
    executor: {type: local, tasks: 4, workers: 2}
    steps:
      - warc_reader: {paths: ["data/*.warc.gz"]}
      - html_extract: {}
    tokenizer: {vocab_size: 32000}   # optional stages after the steps (corpus.stages)
    shards: {val_fraction: 0.01}
    train: {max_steps: 2000}
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corpus import catalog
from corpus.core import storage
from corpus.core.io import run_path
from corpus.core.registry import check_type, config_params, step_params


class ConfigError(Exception):
    """A problem with the pipeline file, reported before any work starts."""


class RunError(Exception):
    """A run that cannot go on (a failed task, a stage with nothing to work on): one message,
    naming what to look at; the run folder keeps what was done, and the same command resumes."""


RUN_KEYS = ("name", "output_dir", "executor", "save_removed", "save_raw", "storage_options", "steps")  # and one key per registered stage
EXECUTOR_TYPES = ("local", "ray", "slurm")


@dataclass
class StepConfig:
    name: str
    params: dict[str, Any]
    index: int  # position in the YAML list, for messages and the summary


@dataclass
class PipelineConfig:
    name: str
    output_dir: Path
    steps: list[StepConfig]
    executor: dict[str, Any] = field(default_factory=lambda: {"type": "local"})
    stages: dict[str, Any] = field(default_factory=dict)  # configured stages, in run order: name -> config
    save_removed: bool = False  # write what each filter drops to removed/<NN>-<step>/
    save_raw: bool = False  # write the documents as read and extracted, before any filter, to raw/ (for corpus ablate)
    source: str = "<config>"
    raw: dict = field(default_factory=dict)  # resolved YAML, written to the run folder (storage options redacted)
    storage_options: dict[str, dict] = field(default_factory=dict)  # per fsspec protocol, ${NAME}s expanded


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, for example executor.tasks=8")
    key, _, text = item.partition("=")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {item!r}: value is not valid YAML: {e}") from None
    return key.strip().split("."), value


def apply_override(raw: dict, keys: list[str], value: Any, item: str) -> None:
    """Set a dotted key. Inside ``steps`` a key may be a list index or a step name
    (``steps.warc_reader.paths=[...]`` changes the first warc_reader)."""
    node: Any = raw
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if isinstance(node, list):
            target = None
            if key.isdigit() and int(key) < len(node):
                target = int(key)
            else:
                for j, entry in enumerate(node):
                    if isinstance(entry, dict) and key in entry:
                        target = j
                        break
            if target is None:
                raise ConfigError(f"--set {item!r}: no list entry {key!r} in the pipeline")
            entry = node[target]
            if last:
                node[target] = value
                return
            # a step entry {name: params}: step straight through to its params
            if isinstance(entry, dict) and not key.isdigit() and len(entry) == 1:
                if entry[key] is None:
                    entry[key] = {}
                node = entry[key]
            else:
                node = entry
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: {'.'.join(keys[:i])} is not a mapping")
        if last:
            node[key] = value
            return
        if node.get(key) is None:
            node[key] = {}
        node = node[key]


def apply_overrides(raw: dict, overrides: list[str]) -> None:
    """Apply ``--set KEY=VALUE`` items to a YAML mapping, in order (the one ``--set`` parser)."""
    for item in overrides:
        keys, value = parse_override(item)
        apply_override(raw, keys, value, item)


def read_yaml(path: str | Path) -> Any:
    """A YAML file read safely; a missing, malformed or non-UTF-8 file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from None


def load_config(path: str | Path, overrides: list[str] = ()) -> PipelineConfig:
    return config_from_dict(read_yaml(path), source=str(path), overrides=overrides)


def stage_config(name: str, value: Any, source: str):
    """The config object of one registered stage from its YAML section."""
    return dataclass_from_dict(catalog.stages()[name].config, value, f"{source}: {name}")


def config_from_dict(raw: Any, source: str = "<config>", overrides: list[str] = ()) -> PipelineConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the pipeline must be a YAML mapping with a 'steps' list")
    raw = copy.deepcopy(raw)
    apply_overrides(raw, list(overrides))

    registered = catalog.stages()
    top_level = RUN_KEYS + tuple(registered)
    for key in raw:
        if key not in top_level:
            raise ConfigError(
                f"{source}: unknown top-level key {key!r}.{_suggest(key, top_level)} Valid keys: {', '.join(top_level)}"
            )
    name = raw.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise ConfigError(f"{source}: 'name' must be a string")
    output_dir = raw.get("output_dir") or f"runs/{name}"
    if not isinstance(output_dir, str):
        raise ConfigError(f"{source}: 'output_dir' must be a string")
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", output_dir)
    if scheme and scheme.group(1).lower() == "file":
        output_dir = output_dir[len("file://"):]
    elif scheme:  # object storage: fsspec must know the protocol and have its package
        import fsspec

        try:
            fsspec.get_filesystem_class(scheme.group(1))
        except (ValueError, ImportError) as e:
            raise ConfigError(f"{source}: output_dir {output_dir!r}: {e}") from None
    if not scheme or scheme.group(1).lower() == "file":
        for parent in [Path(output_dir), *Path(output_dir).parents]:
            if parent.exists():
                if not parent.is_dir():
                    raise ConfigError(f"{source}: output_dir {output_dir!r} cannot be made: {str(parent)!r} is a file")
                break

    executor = raw.get("executor") or {}
    if not isinstance(executor, dict):
        raise ConfigError(f"{source}: 'executor' must be a mapping, for example {{type: local, tasks: 4}}")
    executor = {"type": "local", **executor}
    if executor["type"] not in EXECUTOR_TYPES:
        raise ConfigError(
            f"{source}: executor type {executor['type']!r} is unknown. Valid types: {', '.join(EXECUTOR_TYPES)}"
        )
    for key in ("tasks", "workers"):
        if key in executor and not check_type(executor[key], int):
            raise ConfigError(f"{source}: executor.{key} must be an integer, got {executor[key]!r}")
    if executor.get("tasks", 1) < 1:
        raise ConfigError(f"{source}: executor.tasks must be at least 1, got {executor['tasks']}")
    if executor.get("workers", -1) == 0 or executor.get("workers", -1) < -1:
        raise ConfigError(f"{source}: executor.workers must be at least 1, or -1 (all tasks at once), "
                          f"got {executor['workers']}")

    steps = _validate_steps(raw.get("steps"), source)
    try:
        storage_options = storage.parse(raw.get("storage_options"), source)
    except storage.StorageOptionsError as e:
        raise ConfigError(str(e)) from None
    for key in ("save_removed", "save_raw"):
        if not isinstance(raw.get(key, False), bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {raw[key]!r}")

    stages = {key: stage_config(key, raw[key], source) for key in registered if raw.get(key) is not None}
    for key in stages:
        for need in registered[key].needs:
            if need not in stages:
                raise ConfigError(f"{source}: '{key}' needs a '{need}' section (it runs on what {need} makes)")

    return PipelineConfig(
        name=name,
        output_dir=run_path(output_dir),
        steps=steps,
        executor=executor,
        save_removed=raw.get("save_removed", False),
        save_raw=raw.get("save_raw", False),
        storage_options=storage_options,
        source=source,
        raw=raw,
        stages=stages,
    )


def _validate_steps(steps, source: str) -> list[StepConfig]:
    registry = catalog.steps()
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{source}: 'steps' must be a non-empty list, for example: steps: [{{jsonl_reader: {{paths: [docs/*.jsonl]}}}}]")
    out = []
    for i, entry in enumerate(steps):
        where = f"{source}: step {i + 1}"
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"{where}: each step is a mapping with one key, the step name, for example '- trafilatura: {{}}'")
        (name, params), = entry.items()
        if name not in registry:
            raise ConfigError(
                f"{where}: unknown step {name!r}.{_suggest(name, registry)} Valid steps: {', '.join(sorted(registry))}"
            )
        params = params or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where} {name!r}: parameters must be a mapping, got {params!r}")
        spec = {p.name: p for p in step_params(registry[name])}
        for key, value in params.items():
            if key not in spec:
                raise ConfigError(
                    f"{where} {name!r}: unknown parameter {key!r}.{_suggest(key, spec)} "
                    f"Valid parameters: {', '.join(spec) or '(none)'}"
                )
            if not check_type(value, spec[key].annotation):
                raise ConfigError(
                    f"{where} {name!r}: parameter {key!r} must be {spec[key].type_name}, got {value!r}"
                )
        missing = [p for p in spec.values() if p.required and p.name not in params]
        if missing:
            raise ConfigError(f"{where} {name!r}: missing required parameter {missing[0].name!r} ({missing[0].type_name})")
        out.append(StepConfig(name, params, i))
    return out


def dataclass_from_dict(cls, value, where: str):
    if value is True or value == {}:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a mapping")
    fields = {p.name: p for p in config_params(cls)}
    for key, v in value.items():
        if key not in fields:
            raise ConfigError(
                f"{where}: unknown key {key!r}.{_suggest(key, fields)} Valid keys: {', '.join(fields)}"
            )
        if not check_type(v, fields[key].annotation):
            raise ConfigError(f"{where}: {key!r} must be {fields[key].type_name}, got {v!r}")
    try:
        return cls(**value)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: {e}") from None
