"""Post-training: the chat template's mask, SFT, a reward model, DPO, exact resume of each after
kill -9, batch chat, and the stages in a pipeline, on tiny models."""

import json
import os
import random
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from corpus.core.chat import Conversation
from corpus.tokenizer.sp import Tokenizer
from corpus.tokenizer.train import TokenizerConfig, train_tokenizer
from corpus.trainer.checkpoint import CHECKPOINT, load_model, save_checkpoint
from corpus.trainer.config import DPOConfig, RewardConfig, SFTConfig, TrainConfig
from corpus.trainer.model import GPT, GPTConfig
from corpus.trainer.posttrain import IGNORE, SFT, post_train
from corpus.trainer.tasks import WORDS, make_examples, task
from corpus.trainer.template import ChatTemplate
from tests.conftest import CORPUS, ROOT

TINY = dict(batch_size=8, warmup_steps=2, threads=1, judged=0, examples=400)


def _texts() -> list[str]:
    rng = random.Random(0)
    out = []
    for n in range(300):
        words = rng.sample(WORDS, 5)
        out.append(f"Reverse the order of these words: {' '.join(words)}. The {words[0]} is good, the {words[1]} "
                   f"is bad. 今天的{words[2]}很好，明天不好。")
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny random GPT with our tokenizer (which reserves the chat tokens), saved as a checkpoint."""
    root = tmp_path_factory.mktemp("base")
    with open(root / "docs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": f"d{i}", "text": t}, ensure_ascii=False) + "\n" for i, t in enumerate(_texts()))
    train_tokenizer(root / "docs.jsonl", root / "tok", TokenizerConfig(vocab_size=600, heldout_fraction=0))
    model_file = root / "tok" / "tokenizer.model"
    tok = Tokenizer(model_file)
    cfg = TrainConfig(n_layer=1, n_head=2, n_embd=32, block_size=64, max_steps=1)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_train_config(vars(cfg), tok.vocab_size))
    save_checkpoint(root / CHECKPOINT, model, torch.optim.AdamW(model.parameters()), cfg, 1, 0,
                    {"vocab_size": tok.vocab_size, "eos_id": tok.eos_id, "tokenizer": str(model_file),
                     "tokenizer_model": model_file.read_bytes(), "history": [], "world": 1})
    return root / CHECKPOINT


def _pairs(path, n=300):
    """A learnable preference: the chosen reply praises, the rejected one scolds."""
    rng = random.Random(1)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            w = rng.choice(WORDS)
            f.write(json.dumps({"id": f"p{i}", "prompt": f"Tell me about the {w}.",
                                "chosen": f"The {w} is good.", "rejected": f"The {w} is bad."}) + "\n")
    return path


def test_template_trains_on_assistant_tokens_only(base):
    _, state = load_model(base)
    from corpus.trainer.checkpoint import checkpoint_tokenizer

    tok = checkpoint_tokenizer(state)
    template = ChatTemplate(tok)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a river."},
                {"role": "assistant", "content": "The Yangtze, 长江."}, {"role": "user", "content": "Another?"},
                {"role": "assistant", "content": "The Rhine."}]
    ids, target = template.encode(messages)
    trained = [i for i, t in zip(ids, target) if t]
    end = tok.special_id("<|end|>")
    # exactly the two replies, each with the <|end|> that closes it
    assert trained == tok.encode("The Yangtze, 长江.") + [end] + tok.encode("The Rhine.") + [end]
    assert tok.decode(ids) == ("<|system|>\nBe brief.<|end|>\n<|user|>\nName a river.<|end|>\n<|assistant|>\n"
                               "The Yangtze, 长江.<|end|>\n<|user|>\nAnother?<|end|>\n<|assistant|>\nThe Rhine.<|end|>\n")
    last_only = [i for i, t in zip(ids, template.encode(messages, train="last")[1]) if t]
    assert last_only == tok.encode("The Rhine.") + [end]

    # the SFT loss is the cross-entropy of the assistant tokens alone
    model, _ = load_model(base)
    sft = SFT(template, [Conversation(messages, id="c")] * 8, [], block=64, seed=0)
    items = np.arange(min(2, sft.items))
    loss = sft.loss(model, items, "cpu")
    span = sft.starts[items][:, None] + np.arange(65)[None, :]
    x, y = torch.from_numpy(sft.ids[span[:, :-1]]), torch.from_numpy(sft.labels[span[:, 1:]])
    logits, _ = model(x, y, ignore_index=IGNORE)
    keep = y != IGNORE
    manual = F.cross_entropy(logits[keep], y[keep])
    assert torch.allclose(loss, manual) and 0 < keep.float().mean() < 0.6
    # the packed stream: each conversation's labels are its assistant tokens, the rest ignored
    assert sft.labels[: len(ids)].tolist() == [i if t else IGNORE for i, t in zip(ids, target)]


def test_sft_learns_the_task_from_a_file(base, tmp_path):
    data = tmp_path / "sft.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for r in make_examples("reverse_words", 400, seed=3):
            f.write(json.dumps(r) + "\n")
        f.write(json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}) + "\n")  # no user turn
        f.write("{not json\n")
    result = post_train("sft", tmp_path / "sft", SFTConfig(init=str(base), data=str(data), max_steps=40,
                                                           eval_interval=20, learning_rate=3e-3, **TINY))
    assert result["dropped"] == {"no_user_turn": 1, "bad_json": 1}
    assert result["after"]["heldout_loss"] < result["before"]["heldout_loss"] - 1.5
    card = json.loads((tmp_path / "sft" / "card.json").read_text())
    assert card["data"]["train"] + card["data"]["heldout"] == 400 and card["settings"]["max_steps"] == 40
    assert "| heldout_loss |" in (tmp_path / "sft" / "card.md").read_text()


def test_reward_model_learns_a_preference_above_chance(base, tmp_path):
    result = post_train("reward", tmp_path / "rm", RewardConfig(init=str(base), data=str(_pairs(tmp_path / "p.jsonl")),
                                                                max_steps=60, eval_interval=30, learning_rate=3e-3,
                                                                **TINY))
    assert result["before"]["heldout_accuracy"] == 0.5  # a zero head: every pair a tie at the start
    assert result["after"]["heldout_accuracy"] >= 0.9
    model, state = load_model(tmp_path / "rm")
    assert state["kind"] == "reward" and type(model).__name__ == "RewardModel"


def test_dpo_moves_the_margin(base, tmp_path):
    result = post_train("dpo", tmp_path / "dpo", DPOConfig(init=str(base), data=str(_pairs(tmp_path / "p.jsonl")),
                                                           max_steps=30, eval_interval=15, learning_rate=3e-3,
                                                           beta=0.5, **TINY))
    assert result["before"]["heldout_reward_margin"] == 0  # the policy starts as the reference
    assert result["after"]["heldout_reward_margin"] > 0.5
    assert result["after"]["heldout_preference_accuracy"] >= 0.9


def test_task_judge():
    t = task("reverse_words")
    prompt = [{"role": "user", "content": t.instruction + "king sword night"}]
    assert t.score(prompt, "night sword king") == 1.0 and t.score(prompt, " night  sword king ") == 1.0
    assert t.score(prompt, "night king") == pytest.approx(1 / 3) and t.score(prompt, "king sword night") == 1 / 3
    pairs = make_examples("reverse_words", 50, seed=0, pairs=True)
    assert all(t.score(p["messages"], p["chosen"]) == 1 > t.score(p["messages"], p["rejected"]) for p in pairs)


# ``corpus STAGE ...`` that kills itself with SIGKILL in its 11th optimizer step, after its
# forward and backward, before the update (its last checkpoint is step 8's): the same point of the
# run on any machine, where a kill from outside on a timer can land before the first checkpoint
# (a slow, loaded machine) or after the last step (a fast one).
KILLED_IN_STEP_11 = """
import os, signal, sys
import corpus
from torch.optim.optimizer import register_optimizer_step_pre_hook
steps = 0
def kill_in_step_11(optimizer, args, kwargs):
    global steps
    steps += 1
    if steps == 11:
        os.kill(os.getpid(), signal.SIGKILL)
register_optimizer_step_pre_hook(kill_in_step_11)
from corpus.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _corpus(args, env, killed: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", KILLED_IN_STEP_11] if killed else CORPUS
    r = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == (-signal.SIGKILL if killed else 0), r.stderr[-3000:]
    return r


@pytest.mark.parametrize("stage", ["sft", "reward", "dpo"])
def test_each_stage_resumes_exactly_after_kill_9(base, tmp_path, stage):
    """A run killed (SIGKILL) after a checkpoint and started again ends with the same weights as a
    run never interrupted."""
    from corpus.trainer.checkpoint import read_meta

    data = _pairs(tmp_path / "p.jsonl") if stage != "sft" else None
    args = [stage, "--init", str(base), *(["--data", str(data)] if data else []),
            "--set", "max_steps=40", "--set", "checkpoint_interval=4", "--set", "eval_interval=20",
            "--set", "judged=0", "--set", "threads=1", "--set", "batch_size=16", "--set", "task=reverse_words",
            "--set", "examples=300", "--set", "device=cpu"]  # bitwise equal: no GPU kernel's atomics
    env = os.environ | {"OMP_WAIT_POLICY": "PASSIVE"}
    _corpus([*args, "--output", str(tmp_path / "full")], env)
    _corpus([*args, "--output", str(tmp_path / "cut")], env, killed=True)
    assert read_meta(tmp_path / "cut")["step"] == 8  # steps 9 and 10 lost, 11 cut short
    assert not (tmp_path / "cut" / "card.json").exists()
    _corpus([*args, "--output", str(tmp_path / "cut")], env)
    a, sa = load_model(tmp_path / "full")
    b, sb = load_model(tmp_path / "cut")
    assert sa["step"] == sb["step"] == 40 and sa["data_position"] == sb["data_position"]
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name
    assert sa["history"] == sb["history"]
    assert json.loads((tmp_path / "full" / "card.json").read_text())["after"] == \
        json.loads((tmp_path / "cut" / "card.json").read_text())["after"]


def test_batch_chat_answers_each_record(base, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    records = [{"id": 1, "messages": [{"role": "user", "content": "Reverse the order of these words: king sword"}]},
               {"id": 2, "conversations": [{"from": "human", "value": "你好"}], "note": "kept"}]
    prompts.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        subprocess.run([*CORPUS, "chat", str(base), "--prompts", str(prompts), "--output", str(tmp_path / name),
                        "--temperature", "0", "--max-tokens", "8"], cwd=ROOT, check=True, capture_output=True)
        outs.append([json.loads(line) for line in (tmp_path / name).read_text(encoding="utf-8").splitlines()])
    assert outs[0] == outs[1]  # greedy: the same replies every time
    assert [{k: v for k, v in r.items() if k != "reply"} for r in outs[0]] == records
    assert all(isinstance(r["reply"], str) for r in outs[0])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "content": "hello"}]}) + "\n")
    r = subprocess.run([*CORPUS, "chat", str(base), "--prompts", str(bad), "--output", str(tmp_path / "c.jsonl")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "must end with the user's turn" in r.stderr and not (tmp_path / "c.jsonl").exists()


def test_post_training_pipeline_runs_its_stages_in_order(tmp_path):
    """pipelines/post_training.yaml, shrunk: pretraining, then the sft:, reward: and dpo: sections,
    each from the stage before it, with cards, results in summary.json and a report section."""
    texts = tmp_path / "texts"
    texts.mkdir()
    for k in range(0, 300, 30):
        (texts / f"t{k}.txt").write_text("\n".join(_texts()[k : k + 30]), encoding="utf-8")
    out = tmp_path / "run"
    tiny = "{max_steps: 6, eval_interval: 3, examples: 200, judged: 4, max_new_tokens: 8, threads: 1, batch_size: 8}"
    sets = [f"output_dir={out}", f"steps.files_reader.paths=[{texts}/*.txt]", "tokenizer.vocab_size=600",
            "train={n_layer: 1, n_head: 2, n_embd: 32, block_size: 64, batch_size: 8, max_steps: 6, eval_interval: 3, "
            "sample_tokens: 0, threads: 1}", f"sft={tiny}", f"reward={tiny}", f"dpo={tiny}", "executor.tasks=1",
            "executor.workers=1"]
    for s in ("sft", "reward", "dpo"):
        sets.append(f"{s}.task=reverse_words")
    r = subprocess.run([*CORPUS, "run", "pipelines/post_training.yaml", *[a for s in sets for a in ("--set", s)]],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    stages = summary["stages"]
    assert list(stages)[-3:] == ["sft", "reward", "dpo"]
    assert stages["sft"]["after"]["heldout_loss"] < stages["sft"]["before"]["heldout_loss"]
    assert "heldout_accuracy" in stages["reward"]["after"] and "win_rate" in stages["dpo"]["after"]
    for s, init in (("sft", out / "train"), ("reward", out / "train"), ("dpo", out / "sft")):
        card = json.loads((out / s / "card.json").read_text())
        assert card["init"] == str(init) and (out / s / "card.md").exists()
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "<h2>Post-training</h2>" in report and "<h3>dpo</h3>" in report


def test_a_stage_refuses_to_resume_from_other_inputs(base, tmp_path):
    """A checkpoint trained from one init or one set of examples never silently continues on another."""
    data = _pairs(tmp_path / "p.jsonl")
    cfg = dict(init=str(base), data=str(data), max_steps=4, eval_interval=2, **TINY)
    post_train("reward", tmp_path / "rm", RewardConfig(**cfg))
    _pairs(data, n=200)  # other examples
    with pytest.raises(ValueError, match="another init checkpoint or other examples"):
        post_train("reward", tmp_path / "rm", RewardConfig(**cfg))
