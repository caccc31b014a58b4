"""Credentials and options for object storage: the YAML's ``storage_options:``.

```yaml
storage_options:
  s3: {key: "${AWS_ACCESS_KEY_ID}", secret: "${AWS_SECRET_ACCESS_KEY}", endpoint_url: "https://minio.example:9000"}
```

One mapping per fsspec protocol (``s3``, ``gcs``, ``hf``, ...), the keyword arguments of that
filesystem. ``${NAME}`` in a value is taken from the environment at load, so that a pipeline
file holds no secret. They reach fsspec through its own configuration (``fsspec.config.conf``)
and, for the processes a run starts (executor workers, Ray tasks), through fsspec's
``FSSPEC_<PROTOCOL>`` environment variables, which fsspec reads when it is imported. The copy of
the pipeline written to the run folder, the logs and the summary show them redacted.
"""

from __future__ import annotations

import copy
import json
import os
import re

REDACTED = "<redacted>"
# options that say where, not who: shown as they are
PUBLIC = frozenset({"endpoint_url", "region_name", "region", "anon", "project", "use_ssl", "requester_pays",
                    "default_block_size", "default_cache_type", "use_listings_cache", "version_aware", "project_id"})
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class StorageOptionsError(ValueError):
    pass


def parse(raw, source: str = "<config>") -> dict[str, dict]:
    """The ``storage_options`` mapping, validated, with ``${NAME}`` taken from the environment."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise StorageOptionsError(f"{source}: storage_options must map a protocol to its options, for example "
                                  "{s3: {key: '${AWS_ACCESS_KEY_ID}', secret: '${AWS_SECRET_ACCESS_KEY}'}}")
    import fsspec

    out = {}
    for protocol, options in raw.items():
        if protocol not in fsspec.available_protocols():
            raise StorageOptionsError(f"{source}: storage_options: {protocol!r} is not an fsspec protocol")
        out[protocol] = _expand(options, f"{source}: storage_options.{protocol}")
    return out


def _expand(value, where: str):
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, str):
        def var(m: re.Match) -> str:
            if m.group(1) not in os.environ:
                raise StorageOptionsError(f"{where}: the environment has no {m.group(1)}")
            return os.environ[m.group(1)]

        return _VAR.sub(var, value)
    return value


def apply(options: dict[str, dict]) -> None:
    """Make ``options`` fsspec's defaults here and in the processes started from now on."""
    if not options:
        return
    import fsspec

    for protocol, opts in options.items():
        fsspec.config.conf.setdefault(protocol, {}).update(opts)
        os.environ[f"FSSPEC_{protocol.upper()}"] = json.dumps(fsspec.config.conf[protocol])


def environment(options: dict[str, dict]) -> dict[str, str]:
    """The variables that carry ``options`` to processes on other machines (Ray's runtime_env)."""
    return {f"FSSPEC_{p.upper()}": os.environ[f"FSSPEC_{p.upper()}"] for p in options
            if f"FSSPEC_{p.upper()}" in os.environ}


def redacted(raw: dict) -> dict:
    """A pipeline mapping with every storage option but PUBLIC ones replaced by ``<redacted>``."""
    if not isinstance(raw.get("storage_options"), dict):
        return raw
    out = copy.deepcopy(raw)

    def hide(value, key=None):
        if isinstance(value, dict):
            return {k: hide(v, k) for k, v in value.items()}
        if key in PUBLIC or (isinstance(value, str) and _VAR.fullmatch(value)):  # where, or a ${NAME}: no secret
            return value
        return REDACTED

    out["storage_options"] = {p: hide(o) if isinstance(o, dict) else REDACTED for p, o in raw["storage_options"].items()}
    return out
