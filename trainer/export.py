"""Export a checkpoint as a Hugging Face transformers folder: ``AutoModelForCausalLM`` and
``AutoTokenizer`` load it offline (``corpus export CHECKPOINT --output DIR``).

The model. Ours is GPT-2's network without biases and with exact GELU, so a checkpoint with
learned positions becomes a ``GPT2LMHeadModel`` (its biases zero, its ``Conv1D`` weights the
transpose of our ``nn.Linear`` ones); a rotary checkpoint (``rope=True``) becomes a
``GPTNeoXForCausalLM`` with rotary on every channel (``rotary_pct`` 1.0, base 10000, NeoX's
first-half/second-half rotation, which is ours), sequential residuals, zero biases, and its fused
``query_key_value`` rows regrouped per head as [q, k, v] (ours are [all q, all k, all v]). Both tie
the output head to the token embedding, as ours does. The export runs both networks on one block of
token ids and refuses to write a model whose logits differ by more than ``LOGIT_TOLERANCE``.

The tokenizer. ``tokenizer.json`` is built with the ``tokenizers`` library from the sentencepiece
model's own pieces and settings: BPE over the same vocabulary (same ids) with byte fallback, the
merges ranked by the merged piece's score (sentencepiece's own order), spaces written as ▁ by the
normaliser, no dummy prefix, no other normalisation, and the user-defined pieces (runs of newlines)
matched whole before BPE, longest first, as sentencepiece does; digits need nothing more, since no
piece holds two of them. Its ids equal ``corpus.tokenizer.sp.Tokenizer.encode``'s, and decoding
gives the text back, with two exceptions inherent to a tokenizer.json. Our ``Tokenizer`` encodes a
literal ▁ (U+2581) as its three byte pieces (the documented quirk); the exported tokenizer does not
match that: it reads a literal ▁ as a space (the ▁ piece), so it decodes to a space. And the special
tokens (``<unk>``, ``<s>``, ``</s>`` and the chat template's control tokens ``<|user|>``,
``<|end|>``, ... where the tokenizer reserves them) written literally in text are those tokens for
transformers, as usual there, where our ``Tokenizer`` spells them out in characters or bytes. The
sentencepiece model itself is copied as ``tokenizer.model``.

Needs transformers and protobuf (to read the sentencepiece model's settings): ``pip install
'corpus[hf]'``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from corpus.core.chat import CHAT_TOKENS, TOKENS
from corpus.core.io import atomic_dir
from corpus.trainer.checkpoint import checkpoint_tokenizer, load_model
from corpus.trainer.model import GPT

HF_MISSING = "corpus export needs transformers and protobuf: pip install 'corpus[hf]'"
LOGIT_TOLERANCE = 1e-3  # float32 logits of the same network agree to about 1e-5
# corpus.trainer.template's chat template in Jinja, for tokenizer.apply_chat_template
CHAT_TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|>' + '\\n' + m['content'] + '" + TOKENS["end"] + "' + '\\n' }}"
                 "{% endfor %}{% if add_generation_prompt %}{{ '" + TOKENS["assistant"] + "' + '\\n' }}{% endif %}")
CHECK_TEXT = "Hello,  world!\tTabs, 3 spaces   and digits 2024-06-01.\n\n中文测试：价格是 12345 元。\r\n¿Qué? 😀\n"
SPM_BPE, SPM_NORMAL, SPM_USER_DEFINED = 2, 1, 4  # sentencepiece_model.proto's enums


def _require_hf():
    try:
        import transformers  # noqa: F401
        from sentencepiece import sentencepiece_model_pb2  # noqa: F401  (needs protobuf)
    except ImportError as e:
        raise ImportError(f"{HF_MISSING} ({e})") from None


def hf_tokenizer(sp, control=()):
    """A ``tokenizers.Tokenizer`` that encodes like the sentencepiece processor ``sp`` (a BPE model
    with our settings: see the module's docstring); ``ValueError`` for settings it does not reproduce.
    The user-defined pieces named in ``control`` (the chat template's tokens) are special tokens."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(sp.serialized_model_proto())
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    unsupported = [what for what, bad in [
        ("a model type other than BPE", spec.model_type != SPM_BPE),
        (f"normalisation {norm.name!r} (only identity)", bool(norm.precompiled_charsmap)),
        ("a dummy prefix", norm.add_dummy_prefix),
        ("removal of extra whitespace", norm.remove_extra_whitespaces),
        ("spaces not escaped as ▁", not norm.escape_whitespaces),
        ("whitespace as a suffix", spec.treat_whitespace_as_suffix),
    ] if bad]
    if unsupported:
        raise ValueError(f"cannot export this sentencepiece model to tokenizer.json: {', '.join(unsupported)}")
    pieces = list(proto.pieces)
    vocab = {p.piece: i for i, p in enumerate(pieces)}
    normal = {p.piece: (-p.score, i) for i, p in enumerate(pieces) if p.type == SPM_NORMAL}
    # sentencepiece merges the adjacent pair whose union is the best-scored piece: every split of a
    # piece into two pieces is a merge, ranked by that piece's score
    ranked = sorted((normal[piece], piece[:k], piece[k:]) for piece in normal for k in range(1, len(piece))
                    if piece[:k] in normal and piece[k:] in normal)
    tok = Tokenizer(BPE(vocab=vocab, merges=[(a, b) for _, a, b in ranked], unk_token=spec.unk_piece,
                        fuse_unk=True, byte_fallback=spec.byte_fallback))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    user = [p.piece for p in pieces if p.type == SPM_USER_DEFINED]
    tok.add_tokens([AddedToken(p, normalized=False, special=False) for p in user if p not in control])
    tok.add_special_tokens([AddedToken(p, normalized=False, special=True) for p in
                            [sp.id_to_piece(i) for i in (sp.unk_id(), sp.bos_id(), sp.eos_id()) if i >= 0]
                            + [p for p in user if p in control]])
    return tok


def _zeros(n: int) -> torch.Tensor:
    return torch.zeros(n)


def gpt2_model(model: GPT, bos_id: int, eos_id: int):
    """Our learned-position GPT as a ``GPT2LMHeadModel`` with the same weights."""
    from transformers import GPT2Config, GPT2LMHeadModel

    c = model.config
    config = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd, n_layer=c.n_layer,
                        n_head=c.n_head, n_inner=4 * c.n_embd, activation_function="gelu", resid_pdrop=c.dropout,
                        embd_pdrop=c.dropout, attn_pdrop=c.dropout, layer_norm_epsilon=1e-5, scale_attn_weights=True,
                        scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False, tie_word_embeddings=True,
                        bos_token_id=bos_id, eos_token_id=eos_id)
    sd, C = model.state_dict(), c.n_embd
    out = {"transformer.wte.weight": sd["wte.weight"], "transformer.wpe.weight": sd["wpe.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": _zeros(C),
           "lm_head.weight": sd["wte.weight"]}
    for i in range(c.n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for a, b, width in [("ln1", "ln_1", C), ("ln2", "ln_2", C)]:
            out[f"{theirs}{b}.weight"], out[f"{theirs}{b}.bias"] = sd[f"{ours}{a}.weight"], _zeros(width)
        for a, b, width in [("attn.qkv", "attn.c_attn", 3 * C), ("attn.proj", "attn.c_proj", C),
                            ("mlp.fc", "mlp.c_fc", 4 * C), ("mlp.proj", "mlp.c_proj", C)]:
            out[f"{theirs}{b}.weight"] = sd[f"{ours}{a}.weight"].t().contiguous()  # Conv1D: (in, out)
            out[f"{theirs}{b}.bias"] = _zeros(width)
    return _load(GPT2LMHeadModel(config), out)


def neox_model(model: GPT, bos_id: int, eos_id: int):
    """Our rotary GPT as a ``GPTNeoXForCausalLM`` with the same weights."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    c = model.config
    config = GPTNeoXConfig(vocab_size=c.vocab_size, hidden_size=c.n_embd, num_hidden_layers=c.n_layer,
                           num_attention_heads=c.n_head, intermediate_size=4 * c.n_embd, hidden_act="gelu",
                           rotary_pct=1.0, rotary_emb_base=10000, max_position_embeddings=c.block_size,
                           layer_norm_eps=1e-5, use_parallel_residual=False, tie_word_embeddings=True,
                           attention_dropout=c.dropout, hidden_dropout=c.dropout, attention_bias=True,
                           bos_token_id=bos_id, eos_token_id=eos_id)
    hf = GPTNeoXForCausalLM(config)
    head = next(k for k in ("embed_out.weight", "lm_head.weight") if k in hf.state_dict())  # renamed in transformers 5
    sd, C, H = model.state_dict(), c.n_embd, c.n_head
    out = {"gpt_neox.embed_in.weight": sd["wte.weight"], head: sd["wte.weight"],
           "gpt_neox.final_layer_norm.weight": sd["ln_f.weight"], "gpt_neox.final_layer_norm.bias": _zeros(C)}
    for i in range(c.n_layer):
        ours, theirs = f"blocks.{i}.", f"gpt_neox.layers.{i}."
        qkv = sd[f"{ours}attn.qkv.weight"]  # rows [q heads, k heads, v heads] -> per head [q, k, v]
        qkv = qkv.view(3, H, C // H, C).transpose(0, 1).reshape(3 * C, C)
        for a, b, weight, width in [
            ("ln1", "input_layernorm", sd[f"{ours}ln1.weight"], C),
            ("ln2", "post_attention_layernorm", sd[f"{ours}ln2.weight"], C),
            ("attn.qkv", "attention.query_key_value", qkv, 3 * C),
            ("attn.proj", "attention.dense", sd[f"{ours}attn.proj.weight"], C),
            ("mlp.fc", "mlp.dense_h_to_4h", sd[f"{ours}mlp.fc.weight"], 4 * C),
            ("mlp.proj", "mlp.dense_4h_to_h", sd[f"{ours}mlp.proj.weight"], C),
        ]:
            out[f"{theirs}{b}.weight"], out[f"{theirs}{b}.bias"] = weight.contiguous(), _zeros(width)
    return _load(hf, out)


def _load(hf, state: dict):
    missing, unexpected = hf.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"converted weights do not fit {type(hf).__name__}: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    return hf.eval()


@torch.no_grad()
def max_logit_diff(model: GPT, hf, ids: torch.Tensor) -> float:
    """The largest absolute difference between our logits and the exported model's on ``ids`` (1, T)."""
    ours, _ = model(ids, ids)  # with targets: the logits of every position
    return float((ours - hf(input_ids=ids).logits).abs().max())


def model_card(state: dict, summary: dict, config: dict) -> str:
    train = state.get("config") or {}
    evals = [h for h in state.get("history") or [] if h.get("val_loss") is not None]
    last = (f"final validation loss {evals[-1]['val_loss']:.4f}"
            + (f", {evals[-1]['val_bpb']:.4f} bits per byte" if evals[-1].get("val_bpb") is not None else "")
            if evals else "no validation loss recorded")
    shape = ", ".join(f"{k} {v}" for k, v in config.items())
    settings = ", ".join(f"{k} {train[k]}" for k in ("batch_size", "grad_accum", "max_steps", "learning_rate",
                                                      "min_lr", "warmup_steps", "weight_decay", "seed") if k in train)
    return f"""---
library_name: transformers
pipeline_tag: text-generation
---

# A small GPT trained with corpus

A decoder-only transformer trained from scratch by the `corpus` project's trainer (nanoGPT style:
pre-norm blocks, no biases, exact GELU, output head tied to the token embedding), exported as a
`{summary['architecture']}`: {summary['parameters']:,} parameters, vocabulary {summary['vocab_size']},
context {config['block_size']} tokens, {'rotary' if config.get('rope') else 'learned'} position embeddings.

## Training

- steps: {state.get('step')}; {last}
- model: {shape}
- optimisation: {settings or 'not recorded'}
- tokenizer: a sentencepiece BPE model (identity normalisation, spaces kept as ▁, digits split,
  byte fallback), here as `tokenizer.json` with the same ids and as `tokenizer.model`; documents
  were packed with `</s>` (id {summary['eos_id']}) between them, no `<s>`.

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
ids = tokenizer("Hello", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=40, do_sample=True, top_k=50)[0]))
```

Inputs are limited to {config['block_size']} tokens. A literal ▁ (U+2581) in the text is read as a
space by this tokenizer (the trainer's own tokenizer keeps it).
"""


def export_hf(checkpoint: str | Path, output_dir: str | Path) -> dict:
    """Write ``checkpoint``'s model, tokenizer and a model card to ``output_dir`` as a transformers
    folder; returns a summary (architecture, parameters, vocabulary size, files, logit difference)."""
    _require_hf()
    from transformers import PreTrainedTokenizerFast

    model, state = load_model(checkpoint)
    if not isinstance(model, GPT):
        raise ValueError(f"{checkpoint}: a {type(model).__name__} checkpoint; only language models (GPT) export")
    model.eval()
    ours = checkpoint_tokenizer(state)
    sp, control = ours.sp, list(getattr(ours, "special", {}))  # the chat tokens, in tokenizers that reserve them
    c = model.config
    if sp.vocab_size() != c.vocab_size:
        raise ValueError(f"{checkpoint}: the tokenizer has {sp.vocab_size()} pieces, the model {c.vocab_size}")
    bos_id, eos_id = sp.bos_id(), sp.eos_id()
    hf = (neox_model if c.rope else gpt2_model)(model, bos_id, eos_id)
    ids = torch.randint(c.vocab_size, (1, min(c.block_size, 1024)), generator=torch.Generator().manual_seed(0))
    diff = max_logit_diff(model, hf, ids)
    if not diff <= LOGIT_TOLERANCE:
        raise ValueError(f"the exported {type(hf).__name__}'s logits differ from the checkpoint's by {diff:g}")

    backend = hf_tokenizer(sp, control)
    if backend.encode(CHECK_TEXT).ids != ours.encode(CHECK_TEXT):
        raise ValueError("the exported tokenizer's ids differ from sentencepiece's on a check text")
    specials = {name: sp.id_to_piece(i) for name, i in
                [("unk_token", sp.unk_id()), ("bos_token", sp.bos_id()), ("eos_token", sp.eos_id())] if i >= 0}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=c.block_size,
                                        clean_up_tokenization_spaces=False, **specials)

    summary = {"architecture": type(hf).__name__, "parameters": sum(p.numel() for p in hf.parameters()),
               "vocab_size": c.vocab_size, "block_size": c.block_size, "eos_id": eos_id, "bos_id": bos_id,
               "step": state.get("step"), "max_abs_logit_diff": diff}
    with atomic_dir(output_dir) as out:  # the whole folder or nothing, over an earlier export too
        hf.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        # the class by the name every transformers version knows (5 writes its new name, TokenizersBackend)
        config_path = out / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8")) | {"tokenizer_class": "PreTrainedTokenizerFast"}
        if set(CHAT_TOKENS) <= set(control):  # apply_chat_template gives our template's ids
            config["chat_template"] = CHAT_TEMPLATE
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / "special_tokens_map.json").write_text(json.dumps(specials | {"additional_special_tokens": control},
                                                                indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (out / "tokenizer.model").write_bytes(sp.serialized_model_proto())
        (out / "README.md").write_text(model_card(state, summary, asdict(c)), encoding="utf-8")
    out = Path(output_dir)
    summary["files"] = sorted(p.name for p in out.iterdir() if p.is_file())
    summary["output"] = str(out)
    return summary
