"""The core: file I/O and atomic writes, the step and stage registries, the shard format, the funnel contract. It imports nothing else of corpus."""
