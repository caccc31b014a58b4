"""The registries: every YAML step name maps to one datatrove ``PipelineStep`` class, every
top-level stage key (``tokenizer``, ``shards``, ``train``, ...) to one ``Stage``.

A step class registers itself with ``@register("name")``. Its ``__init__`` signature *is*
its YAML schema: parameter names, type annotations and defaults are read from it, so
``corpus steps`` and config validation can never drift from the code.

A stage registers itself with ``@register_stage("name", ConfigDataclass, order=...)`` on the
function that runs it; the dataclass is its YAML schema. The application layer (config,
runner, CLI) imports the modules that register (``corpus.catalog``) and reads only these
two dictionaries.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union

from corpus.core.rundir import RunDir

STEPS: dict[str, type] = {}
STAGES: dict[str, "Stage"] = {}


def register(name: str):
    def wrap(cls):
        if name in STEPS and STEPS[name] is not cls:
            raise ValueError(f"step name {name!r} registered twice")
        cls.yaml_name = name
        STEPS[name] = cls
        return cls

    return wrap


@dataclass
class RunContext:
    """What a stage gets from the runner: the run folder, the curated documents, the resolved
    pipeline, the results of the stages that ran before it, and a way to run steps on the run's
    executor."""

    output_dir: Path
    docs: Path
    pipeline: dict = field(default_factory=dict)
    results: dict[str, dict] = field(default_factory=dict)
    # runs a stage's own steps as tasks of the run's executor: executor(name, steps, tasks, logs)
    executor: Callable | None = None

    @property
    def run(self) -> RunDir:
        """The run folder's parts."""
        return RunDir(self.output_dir)


@dataclass(frozen=True)
class Stage:
    """A stage of a run outside the document steps: ``run(ctx, config) -> dict`` (its result,
    recorded in summary.json). ``order`` sorts stages (negative: before the steps); ``needs``
    names stages that must be configured too; ``reads_documents``: the runner makes sure the
    steps write the curated documents to ``ctx.docs``."""

    name: str
    config: type
    run: Callable[[RunContext, Any], dict]
    order: int
    needs: tuple[str, ...] = ()
    reads_documents: bool = False

    @property
    def before_steps(self) -> bool:
        return self.order < 0

    @property
    def doc(self) -> str:
        return (self.run.__doc__ or "").strip()


def register_stage(name: str, config: type, order: int, needs: tuple[str, ...] = (), reads_documents: bool = False):
    def wrap(fn):
        if name in STAGES and STAGES[name].run is not fn:
            raise ValueError(f"stage name {name!r} registered twice")
        STAGES[name] = Stage(name, config, fn, order, tuple(needs), reads_documents)
        return fn

    return wrap


@dataclass
class Param:
    name: str
    annotation: Any
    default: Any
    required: bool

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)


def step_params(cls) -> list[Param]:
    """The YAML parameters of a step: its __init__ parameters, minus *args/**kwargs."""
    sig = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    params = []
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        required = p.default is inspect.Parameter.empty
        params.append(Param(p.name, hints.get(p.name, Any), None if required else p.default, required))
    return params


def config_params(cls) -> list[Param]:
    """The YAML keys of a stage: the fields of its config dataclass."""
    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        params.append(Param(f.name, hints.get(f.name, Any), default, required))
    return params


def type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return "any"
    if annotation is type(None):
        return "null"
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (list, tuple):
        return f"list[{type_name(args[0])}]" if args else "list"
    if origin is dict:
        return f"dict[{type_name(args[0])}, {type_name(args[1])}]" if args else "dict"
    return getattr(annotation, "__name__", str(annotation))


def require_at_least(config, minimum, *names: str) -> None:
    """A stage config's numeric fields: the first one below ``minimum`` is a ValueError naming it."""
    for name in names:
        if getattr(config, name) < minimum:
            raise ValueError(f"{name} must be at least {minimum}")


def check_type(value, annotation) -> bool:
    """Whether a YAML value fits a parameter annotation (ints fit floats; bools fit only bools)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(check_type(value, a) for a in args)
    if origin is Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, list):
            return False
        return not args or all(check_type(v, args[0]) for v in value)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            return False
        return not args or all(check_type(k, args[0]) and check_type(v, args[1]) for k, v in value.items())
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True
