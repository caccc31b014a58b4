"""corpus export: a checkpoint as a transformers folder. GPT-2 (learned positions) and GPT-NeoX
(rotary) load offline with the Auto classes and give our logits; the tokenizer gives our ids."""

import json
import os

import pytest
import torch

pytest.importorskip("transformers", reason="pip install 'corpus[hf]' (the test extra has it)")
pytest.importorskip("google.protobuf", reason="pip install 'corpus[hf]' (the test extra has it)")

from corpus.tokenizer.sp import Tokenizer  # noqa: E402
from corpus.tokenizer.train import TokenizerConfig, train_tokenizer  # noqa: E402
from corpus.trainer.checkpoint import CHECKPOINT, load_model, save_checkpoint  # noqa: E402
from corpus.trainer.config import TrainConfig  # noqa: E402
from corpus.trainer.export import export_hf  # noqa: E402
from corpus.trainer.model import GPT, GPTConfig  # noqa: E402

ENGLISH = [
    "The river rose {n} centimetres overnight, and the ferry to Wuhan waited until 7:45 a.m.",
    "Prices went up by {n}% in March; bread, rice and tea cost more than they did in 2019.",
    "She wrote:  \"Don't forget the keys!\"  Then she left,   quietly, through the back door.",
    "Version {n}.2.1 fixes three bugs (see issue #{n}) and adds a --verbose flag.",
    "In the morning the market opens at 6; by noon the stalls sell noodles, dumplings and fruit.",
]
CHINESE = [
    "今天上午，长江水位上涨了{n}厘米，轮渡推迟到七点四十五分。",
    "三月份物价上涨了{n}%，面包、大米和茶叶都比二零一九年贵。",
    "她写道：“别忘了钥匙！”然后悄悄地从后门离开了。",
    "新版本修复了三个错误（见第{n}号问题），并增加了一个详细输出选项。",
    "早上六点市场开门；到了中午，摊位上卖面条、饺子和水果。",
]
MIXED = ("Hello,  世界! 今天是 2024年6月1日, the temperature is 23.5°C.\n\n"
         "我们在 Beijing 学习   machine learning（机器学习）。\r\n\tTabs\tand 3 spaces   end. 12345 + 678 = 13023\n")


@pytest.fixture(scope="module")
def tokenizer_model(tmp_path_factory):
    """Our BPE tokenizer (the project's options) trained on a few KB of mixed Chinese and English."""
    root = tmp_path_factory.mktemp("tok")
    docs = []
    for n in range(60):
        lines = [t.format(n=n * 37 % 1000) for t in ENGLISH[n % 5:] + CHINESE[: n % 5 + 1]]
        docs.append({"id": f"d{n}", "text": ("\n" if n % 2 else "\n\n").join(lines)})
    with open(root / "docs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
    train_tokenizer(root / "docs.jsonl", root / "tok", TokenizerConfig(vocab_size=700, heldout_fraction=0))
    return root / "tok" / "tokenizer.model"


def checkpoint(tokenizer_model, folder, rope: bool):
    """A tiny random GPT saved as a checkpoint, the way the trainer saves one."""
    tok = Tokenizer(tokenizer_model)
    cfg = TrainConfig(n_layer=2, n_head=2, n_embd=32, block_size=32, rope=rope, max_steps=3)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_train_config(vars(cfg), tok.vocab_size))
    with torch.no_grad():  # larger weights than at initialisation: logits far from uniform
        for p in model.parameters():
            p.mul_(4)
    path = folder / CHECKPOINT
    save_checkpoint(path, model, torch.optim.AdamW(model.parameters()), cfg, 3, 0,
                    {"vocab_size": tok.vocab_size, "eos_id": tok.eos_id, "tokenizer": str(tokenizer_model),
                     "tokenizer_model": tokenizer_model.read_bytes(), "history": [], "world": 1})
    return path


@pytest.mark.parametrize("rope,architecture", [(False, "GPT2LMHeadModel"), (True, "GPTNeoXForCausalLM")])
def test_export_loads_in_transformers_with_our_logits_and_ids(tokenizer_model, tmp_path, rope, architecture):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ckpt = checkpoint(tokenizer_model, tmp_path, rope)
    summary = export_hf(ckpt, tmp_path / "hf")
    out = tmp_path / "hf"
    assert summary["architecture"] == architecture
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
            "README.md"} <= set(summary["files"])
    assert "# A small GPT" in (out / "README.md").read_text()

    ours, _ = load_model(ckpt)
    hf = AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    assert type(hf).__name__ == architecture and hf.config.eos_token_id == 2 and hf.config.bos_token_id == 1
    assert summary["parameters"] == sum(p.numel() for p in hf.parameters())
    ids = torch.randint(ours.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, _ = ours.eval()(ids, ids)
        diff = float((logits - hf(input_ids=ids).logits).abs().max())
    print(f"{architecture}: max |logit diff| {diff:.2e} (logits up to {float(logits.abs().max()):.1f})")
    assert diff < 1e-4

    tok = Tokenizer(tokenizer_model)
    hft = AutoTokenizer.from_pretrained(out, local_files_only=True)
    assert hft.eos_token_id == 2 and hft.unk_token_id == 0 and hft.bos_token_id == 1
    assert hft.model_max_length == 32
    texts = [MIXED, " leading space", "trailing  ", "\n\n\n\nfour newlines\n\n\n\n\nfive", "数字0123456789和标点，。！？",
             "emoji 😀 and rare 龘 characters fall back to bytes", *ENGLISH, *CHINESE, ""]
    for text in texts:
        ids = hft(text).input_ids
        assert ids == tok.encode(text), text
        assert hft.decode(ids) == text == tok.decode(ids)
    # the documented differences: a literal ▁ is its byte pieces for us, a space for transformers;
    # the chat tokens (where the tokenizer reserves them) are special tokens there, spelled out by us
    assert hft("a\u2581b").input_ids == tok.encode("a b") != tok.encode("a\u2581b")
    for token, i in getattr(tok, "special", {}).items():
        ids = hft(f"{token}\nhi").input_ids
        assert ids[0] == i and ids[1:] == tok.encode("\nhi") and hft.decode(ids, skip_special_tokens=True) == "\nhi"
    # the chat template: transformers' apply_chat_template gives the ids our fine-tuning trains on
    from corpus.trainer.template import ChatTemplate

    messages = [{"role": "system", "content": "简短回答。"}, {"role": "user", "content": "Name a river, please."},
                {"role": "assistant", "content": "长江 (the Yangtze)."}, {"role": "user", "content": "Another one?"}]
    hf_ids = hft.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    hf_ids = hf_ids["input_ids"] if isinstance(hf_ids, dict) or hasattr(hf_ids, "keys") else hf_ids
    assert list(hf_ids) == ChatTemplate(tok).prompt(messages)


def test_cli_export(tokenizer_model, tmp_path):
    import subprocess

    from tests.conftest import CORPUS, ROOT

    ckpt = checkpoint(tokenizer_model, tmp_path, rope=False)
    r = subprocess.run([*CORPUS, "export", str(ckpt), "--output", str(tmp_path / "hf")], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["architecture"] == "GPT2LMHeadModel" and summary["max_abs_logit_diff"] < 1e-4
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["n_positions"] == 32 and config["activation_function"] == "gelu" and config["tie_word_embeddings"]
    tokenizer_config = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast" and tokenizer_config["eos_token"] == "</s>"


def test_missing_transformers_names_the_extra(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'corpus\[hf\]'"):
        export_hf(tmp_path / "checkpoint", tmp_path / "hf")
