"""The bundled GPT: model, shard loader, training loop, evaluation and sampling."""
