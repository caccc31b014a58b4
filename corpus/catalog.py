"""Every step and stage there is: imports the modules that register them, then reads the
registries (``corpus.core.registry``).

Steps live in ``corpus.readers``, ``corpus.extract``, ``corpus.writers`` and in every module of
``corpus.filters`` and ``corpus.dedup``; stages in every module of ``corpus.stages``. A new step
or stage is one new module there: nothing else needs editing. Modules whose names start with
``_`` register nothing and are skipped (``corpus.filters._language_preload`` loads a model when
imported: only a worker's forkserver imports it). The libraries behind them
(``corpus.tokenizer``, ``corpus.trainer``) register nothing and are not imported here, so
``corpus steps`` and config validation do not load PyTorch.
"""

from __future__ import annotations

import importlib
import pkgutil

from corpus.core.registry import STAGES, STEPS, Stage

PROVIDERS = ("corpus.readers", "corpus.extract", "corpus.writers", "corpus.filters", "corpus.dedup", "corpus.stages")


def _import_all() -> None:
    for name in PROVIDERS:
        module = importlib.import_module(name)
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not info.name.startswith("_"):
                importlib.import_module(f"{name}.{info.name}")


def steps() -> dict[str, type]:
    """YAML step name -> its class."""
    _import_all()
    return STEPS


def stages() -> dict[str, Stage]:
    """Stage key -> its Stage, in the order they run."""
    _import_all()
    return dict(sorted(STAGES.items(), key=lambda kv: kv[1].order))
