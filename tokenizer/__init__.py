"""Tokenizer training (sentencepiece BPE, lossless) and encoding documents into Arrow token shards."""
