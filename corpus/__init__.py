"""corpus: raw public text to curated documents, a tokenizer, token shards and a trained GPT."""

__version__ = "0.1.0"
