"""Stages: the steps of a run before and after the document steps (tokenizer, shards, train, ...). Each module registers one stage with its config schema."""
