"""The package's shape: one import package (`corpus`) in the installed distribution, and imports
that only point down the layers written in DESIGN.md."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# the repository folders that are subpackages of corpus (pyproject.toml's package-dir)
PACKAGE_DIRS = {"corpus": "corpus", "filters": "corpus.filters", "dedup": "corpus.dedup",
                "tokenizer": "corpus.tokenizer", "trainer": "corpus.trainer"}
OLD_TOP_LEVEL = {"filters", "dedup", "tokenizer", "trainer"}


def layers() -> list[tuple[int, str, list[str]]]:
    block = re.search(r"```layers\n(.*?)```", (ROOT / "DESIGN.md").read_text(), re.S)
    assert block, "DESIGN.md has no ```layers block"
    out = []
    for line in block.group(1).strip().splitlines():
        number, name, *units = line.split()
        out.append((int(number), name, units))
    return out


def unit_of(module: str, table) -> tuple[int, str] | None:
    """(layer, unit) of a module: the longest unit that is the module or a package above it."""
    best = None
    for number, _, units in table:
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (number, unit)
    return best


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def imports(module: str, path: Path) -> list[tuple[str, int]]:
    """Every module an import statement names, anywhere in the file (functions included)."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(parent + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]  # from pkg import module
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant):
            found.append((node.args[0].value, node.lineno))
    return found


def test_every_module_has_a_layer():
    table = layers()
    missing = [m for m in modules() if m != "corpus" and unit_of(m, table) is None]
    assert not missing, f"modules in no layer of DESIGN.md: {missing}"


def test_imports_point_down():
    table = layers()
    all_modules = modules()
    problems = []
    edges: dict[str, set[str]] = {}
    for module, path in all_modules.items():
        source = unit_of(module, table) if module != "corpus" else (-1, "corpus")
        for target, line in imports(module, path):
            top = target.split(".")[0]
            if top in OLD_TOP_LEVEL:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target!r}: use corpus.{target}")
                continue
            if top != "corpus" or target == "corpus" or target not in all_modules and \
                    not any(m.startswith(target + ".") for m in all_modules):
                continue  # another library, or a name imported from a module
            dest = unit_of(target, table)
            if dest is None:
                continue  # the root package itself (its version)
            if dest[0] > source[0]:
                problems.append(f"{path.relative_to(ROOT)}:{line} ({source[1]}, layer {source[0]}) imports {target} "
                                f"({dest[1]}, layer {dest[0]})")
            elif dest[1] != source[1]:
                edges.setdefault(source[1], set()).add(dest[1])
    assert not problems, "imports that point up:\n" + "\n".join(problems)
    # within a layer, units may use each other, but never in a circle
    state: dict[str, int] = {}

    def visit(unit: str, trail: list[str]) -> None:
        if state.get(unit) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(trail + [unit])}")
        if state.get(unit) == 2:
            return
        state[unit] = 1
        for nxt in sorted(edges.get(unit, ())):
            visit(nxt, trail + [unit])
        state[unit] = 2

    for unit in sorted(edges):
        visit(unit, [])


def test_the_layer_check_catches_an_upward_import(tmp_path):
    """The checker itself: an import of the runner from a filter is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from corpus.pipeline import Runner\n")
    table = layers()
    (target, _), = [(t, n) for t, n in imports("corpus.filters.bad", bad) if t == "corpus.pipeline"]
    assert unit_of(target, table)[0] > unit_of("corpus.filters.bad", table)[0]


def test_installed_distribution_has_one_import_package(tmp_path):
    """`pip install .` puts exactly one top-level package, corpus, in site-packages, and its
    subpackages import from there."""
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target",
                        str(target), str(ROOT)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and "No matching distribution" in r.stderr:
        pytest.skip(f"cannot fetch the build backend: {r.stderr[-300:]}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Warning" not in r.stderr, f"the build prints packaging warnings: {r.stderr[-2000:]}"
    dist, = importlib.metadata.distributions(path=[str(target)])
    assert dist.metadata["Name"] == "corpus"
    top = {f.parts[0] for f in dist.files if not f.parts[0].endswith(".dist-info") and f.parts[0] not in ("..", "bin")}
    assert top == {"corpus"}, f"the wheel installs {sorted(top)}"
    names = {"/".join(f.parts[:2]) for f in dist.files}
    for sub in ("corpus/core", "corpus/filters", "corpus/dedup", "corpus/tokenizer", "corpus/trainer", "corpus/stages",
                "corpus/crawler"):
        assert sub in names, f"{sub} is missing from the wheel"
    assert not any((target / name).exists() for name in OLD_TOP_LEVEL)
    assert {"corpus/filters/data/ldnoobw/zh", "corpus/filters/data/ldnoobw/ATTRIBUTION.md",
            "corpus/filters/data/fineweb2/zh.yml", "corpus/filters/data/fineweb2/ATTRIBUTION.md",
            "corpus/filters/data/quality/hplt2/model.ftz", "corpus/filters/data/quality/hplt2/card.json",
            "corpus/filters/data/quality/hplt2/ATTRIBUTION.md"} <= {str(f) for f in dist.files}
    code = ("import corpus.filters.heuristics as h, corpus.dedup.step, corpus.tokenizer.encode, corpus.trainer.model, "
            "corpus.cli; from corpus import catalog; assert h.__file__.startswith(%r), h.__file__; "
            "assert 'minhash_dedup' in catalog.steps() and set(catalog.stages()) == {'crawl', 'tokenizer', 'shards', 'train', 'sft', 'reward', 'dpo'}"
            % str(target))
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
