"""corpus: raw public text to curated documents, a tokenizer, token shards and a trained GPT."""

import os

# Every command that may run torch (run with a train stage, train, ablate, eval, sample, sft,
# reward, dpo, chat, export) imports this package before torch, so the thread policy is set here:
# OpenMP threads that spin while they wait run up to 12x slower when another process keeps a core
# busy (measured: corpus ablate 1,100 tokens/s spinning, 13,500 passive). A value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
