"""Exact and near-duplicate removal: MinHash arithmetic (``minhash``) and the ``minhash_dedup`` step with its four stages (``step``)."""
