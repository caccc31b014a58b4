"""After pretraining: supervised fine-tuning on conversations, a reward model from preference pairs,
and direct preference optimisation (DPO), in one loop that resumes exactly like pretraining.

Our own loop rather than TRL's trainers: the SFT mask and the DPO loss are a few lines each, and
this way the stages share the pretraining loop's checkpoints (safetensors and JSON; exact resume
after kill -9, data order included), learning-rate schedule, optimizer, thread policy and device
handling, with no conversion to and from transformers in between. ``corpus export`` makes any of
their checkpoints a transformers folder for TRL or anything else.

- **sft**: conversations packed into windows of ``block_size`` + 1 tokens; the loss is on the
  assistant turns' tokens only (``ChatTemplate``). Held out: the assistant loss, and exact-match
  accuracy of greedy replies to the held-out prompts, before and after.
- **reward**: the GPT with a scalar head (``RewardModel``) read at the reply's ``<|end|>``;
  Bradley-Terry loss ``-log sigmoid(r_chosen - r_rejected)``. Held out: pairwise accuracy.
- **dpo**: the policy starts as the SFT model, a frozen copy is the reference; the loss is
  ``-log sigmoid(beta * ((log pi_c - log ref_c) - (log pi_r - log ref_r)))`` over the reply tokens.
  Held out: reward margins and preference accuracy; with a ``task``, the judged win rate of the
  policy's replies against the reference model's.

Each stage writes ``checkpoint/``, ``card.json`` and ``card.md`` (settings, data, held-out
figures) and ``result.json`` in its folder.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from loguru import logger

from corpus.core.chat import Conversation, check, read_conversations
from corpus.core.io import settled_dir, sha256_file, write_json
from corpus.trainer.config import PostTrainConfig
from corpus.trainer.checkpoint import (CHECKPOINT, MODEL, Progress, checkpoint_folder, checkpoint_tokenizer, load_model,
                                       read_meta, resume, save_checkpoint)
from corpus.trainer.data import EpochOrder
from corpus.trainer.model import RewardModel
from corpus.trainer.runtime import autocast, autocast_dtype, pick_device
from corpus.trainer.template import ChatTemplate, generate_reply

IGNORE = -100  # a position that is not a training target


# ------------------------------------------------------------------ data
def load_examples(cfg: PostTrainConfig, pairs: bool, generated: Path | None = None) -> tuple[list, list, dict]:
    """(train, held out, counts) of the stage's conversations or pairs. ``cfg.data`` is read in any
    chat format; with none, ``cfg.task`` makes ``cfg.examples`` of them (written to ``generated``).
    Records that cannot be read, and conversations ``check`` finds wrong, are counted by reason and
    left out; the held-out part is chosen by a hash of the prompt, so it never depends on order."""
    from corpus.tokenizer.train import hash_fraction

    path = cfg.data
    if not path:
        if not cfg.task:
            raise ValueError("give data (conversations or preference pairs) or a task")
        from corpus.core.io import atomic_path
        from corpus.trainer.tasks import make_examples

        records = make_examples(cfg.task, cfg.examples, cfg.seed, pairs=pairs)
        with atomic_path(generated) as tmp:
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        path = str(generated)
    counts: dict = {"data": path, "read": 0, "dropped": {}}
    kept: list[Conversation] = []
    skipped: dict = {}
    for conv in (c for file in data_files(path) for c in read_conversations(file, skip_bad=True, skipped=skipped)):
        counts["read"] += 1
        reason = check(conv, cfg.max_turn_chars)
        if reason is None and conv.is_pair != pairs:
            reason = "not_a_pair" if pairs else "a_pair_not_a_conversation"
        if reason:
            counts["dropped"][reason] = counts["dropped"].get(reason, 0) + 1
        else:
            kept.append(conv)
    for reason, n in skipped.items():
        counts["dropped"][reason] = counts["dropped"].get(reason, 0) + n
    # held out by the prompt's text, not the id: a prompt that occurs twice, or in the data of
    # another stage, is on the same side every time (never trained on in one stage and judged in
    # another); past max_heldout (the lowest hashes first), such examples are neither evaluated nor
    # trained on: counted as heldout_unused
    key = {id(c): hash_fraction(prompt_key(c), "heldout") for c in kept}
    candidates = sorted((c for c in kept if key[id(c)] < cfg.heldout_fraction), key=lambda c: key[id(c)])
    heldout = candidates[: cfg.max_heldout]
    held = {id(c) for c in candidates}
    train = [c for c in kept if id(c) not in held]
    counts |= {"train": len(train), "heldout": len(heldout), "heldout_unused": len(candidates) - len(heldout)}
    if not train or not heldout:
        raise ValueError(f"{path}: {len(train)} training and {len(heldout)} held-out "
                         f"{'pairs' if pairs else 'conversations'} after checks ({counts['dropped']}): too few")
    return train, heldout, counts


def prompt_key(c: Conversation) -> str:
    """The text a held-out split is decided on: the conversation up to its last user turn."""
    messages = c.messages[:-1] if not c.is_pair and c.messages and c.messages[-1]["role"] == "assistant" else c.messages
    return json.dumps(messages, ensure_ascii=False, sort_keys=True)


def data_files(path: str) -> list[str]:
    """``path`` itself, or the .jsonl/.json files (any compression) of the folder ``path``."""
    from corpus.core.io import run_path

    folder = run_path(path)
    if not folder.is_dir():
        if not folder.exists():
            raise FileNotFoundError(f"{path}: no such file or folder of conversations")
        return [str(path)]
    files = sorted(str(p) for p in folder.iterdir() if ".json" in p.name and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{path}: no .jsonl or .json files in this folder")
    return files


def _rows(seqs: list[list[int]], pad: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [pad] * (width - len(s)) for s in seqs], dtype=torch.long)


def _fit(ids: list[int], target: list[bool], block: int) -> tuple[list[int], list[bool], bool]:
    """A sequence cut to ``block`` + 1 tokens from the left (the reply is at the end); whether it was cut."""
    if len(ids) <= block + 1:
        return ids, target, False
    return ids[-(block + 1):], target[-(block + 1):], True


# ------------------------------------------------------------------ objectives
class SFT:
    """Packed conversations; the loss on assistant tokens only."""

    kind, pairs, model_kind = "sft", False, "gpt"

    def __init__(self, template: ChatTemplate, train: list[Conversation], heldout: list[Conversation], block: int,
                 seed: int):
        self.template, self.block, self.heldout = template, block, heldout
        order = np.random.default_rng([seed, 1]).permutation(len(train))
        ids, labels = [], []
        for k in order:
            i, t = template.encode(train[k].messages)
            ids += i
            labels += [tok if keep else IGNORE for tok, keep in zip(i, t)]
        self.ids, self.labels = np.array(ids, np.int64), np.array(labels, np.int64)
        starts = np.arange(0, len(ids) - block - 1 + 1, block)
        # windows with at least one target (a window of only user text would have no loss)
        self.starts = np.array([s for s in starts if (self.labels[s + 1 : s + block + 1] != IGNORE).any()], np.int64)
        if not len(self.starts):
            raise ValueError("the conversations are too short for one window of block_size tokens with an answer")
        self.items = len(self.starts)
        self.stats = {"train_tokens": len(ids), "train_target_tokens": int((self.labels != IGNORE).sum()),
                      "windows": self.items}

    def loss(self, model, items: np.ndarray, device: str) -> torch.Tensor:
        span = self.starts[items][:, None] + np.arange(self.block + 1)[None, :]
        x = torch.from_numpy(self.ids[span[:, :-1]]).to(device)  # (B, T)
        y = torch.from_numpy(self.labels[span[:, 1:]]).to(device)  # (B, T), IGNORE where not a target
        return model(x, y, ignore_index=IGNORE)[1]

    @torch.no_grad()
    def evaluate(self, model, device: str) -> dict:
        """Mean loss per assistant token of the held-out conversations, each scored alone."""
        total, count, cut = 0.0, 0, 0
        for k in range(0, len(self.heldout), 16):
            seqs, labels = [], []
            for c in self.heldout[k : k + 16]:
                i, t, was_cut = _fit(*self.template.encode(c.messages), self.block)
                cut += was_cut
                seqs.append(i)
                labels.append([tok if keep else IGNORE for tok, keep in zip(i, t)])
            x, y = _rows(seqs, 0).to(device), _rows(labels, IGNORE).to(device)
            logits, _ = model(x[:, :-1], y[:, 1:], ignore_index=IGNORE)
            targets = y[:, 1:].reshape(-1)
            total += F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets, ignore_index=IGNORE,
                                     reduction="sum").item()
            count += int((targets != IGNORE).sum())
        return {"heldout_loss": round(total / max(1, count), 4), "heldout_target_tokens": count}


class PairObjective:
    """Preference pairs as (chosen, rejected) token rows, each cut to ``block_size`` + 1 tokens."""

    pairs = True

    def __init__(self, template: ChatTemplate, train: list[Conversation], heldout: list[Conversation], block: int):
        self.template, self.block = template, block
        self.cut = 0
        self.train, self.heldout = [self._encode(c) for c in train], [self._encode(c) for c in heldout]
        self.items = len(self.train)
        self.stats = {"pairs_cut_to_block": self.cut}

    def _encode(self, c: Conversation):
        out = []
        for reply in (c.chosen, c.rejected):
            ids, target = self.template.encode(c.messages + [{"role": "assistant", "content": reply}], train="last")
            n = len(ids) - len(self.template.newline)
            ids, target = ids[:n], target[:n]  # ends at <|end|>
            ids, target, cut = _fit(ids, target, self.block - 1)
            self.cut += cut
            out.append((ids, target))
        return out

    def batch(self, pairs: list, device: str):
        """ids (2B, T) (the chosen rows, then the rejected), target mask (2B, T), last positions (2B,)."""
        seqs = [p[0] for p in pairs] + [p[1] for p in pairs]
        ids = _rows([s[0] for s in seqs], 0).to(device)
        mask = _rows([[int(t) for t in s[1]] for s in seqs], 0).to(device).bool()
        last = torch.tensor([len(s[0]) - 1 for s in seqs], device=device)
        return ids, mask, last


def accuracy(margins: np.ndarray) -> float:
    """The share of pairs ranked right (margin above 0), a tie counting half."""
    return round(float((margins > 0).mean() + 0.5 * (margins == 0).mean()), 4)


class Reward(PairObjective):
    kind, model_kind = "reward", "reward"

    def loss(self, model, items: np.ndarray, device: str) -> torch.Tensor:
        ids, _, last = self.batch([self.train[i] for i in items], device)
        r = model(ids, last)  # (2B,)
        chosen, rejected = r.chunk(2)
        return -F.logsigmoid(chosen - rejected).mean()

    @torch.no_grad()
    def evaluate(self, model, device: str) -> dict:
        margins = []
        for k in range(0, len(self.heldout), 16):
            ids, _, last = self.batch(self.heldout[k : k + 16], device)
            chosen, rejected = model(ids, last).chunk(2)
            margins += (chosen - rejected).tolist()
        m = np.array(margins)
        return {"heldout_accuracy": accuracy(m), "heldout_margin": round(float(m.mean()), 4)}


def sequence_logprobs(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of log p of the target tokens of each row: ids (N, T), mask (N, T) marks targets → (N,)."""
    lp = model.token_logprobs(ids[:, :-1], ids[:, 1:])  # (N, T-1)
    return (lp * mask[:, 1:]).sum(-1)  # (N,)


class DPO(PairObjective):
    kind, model_kind = "dpo", "gpt"

    def __init__(self, template, train, heldout, block, reference, beta: float, sft_weight: float, device: str,
                 dtype: torch.dtype | None = None):
        super().__init__(template, train, heldout, block)
        self.beta, self.sft_weight = beta, sft_weight
        self.reference = reference
        # the frozen reference's log-probabilities, once per pair (the same on every resume), under
        # the autocast the policy's are computed in (training and evaluation): else bf16 rounding
        # alone would make margins on CUDA
        with autocast(device, dtype):
            self.ref_train = self._logps(reference, self.train, device)
            self.ref_heldout = self._logps(reference, self.heldout, device)

    @torch.no_grad()
    def _logps(self, model, pairs: list, device: str) -> torch.Tensor:
        model.eval()
        out = []
        for k in range(0, len(pairs), 16):
            ids, mask, _ = self.batch(pairs[k : k + 16], device)
            out.append(sequence_logprobs(model, ids, mask).view(2, -1).T)  # (B, 2): chosen, rejected
        return torch.cat(out)  # (pairs, 2)

    def margins(self, model, pairs: list, ref: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The implicit reward margins (B,) and the chosen replies' mean log p per token (B,)."""
        ids, mask, _ = self.batch(pairs, device)
        policy = sequence_logprobs(model, ids, mask).view(2, -1).T  # (B, 2)
        chosen_tokens = mask[: len(pairs), 1:].sum(-1).clamp(min=1)  # (B,)
        return (self.beta * ((policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1])),  # (B,)
                policy[:, 0] / chosen_tokens)  # (B,)

    def loss(self, model, items: np.ndarray, device: str) -> torch.Tensor:
        margins, chosen_logp = self.margins(model, [self.train[i] for i in items], self.ref_train[items], device)
        # with sft_weight (TRL's rpo_alpha): plus the chosen replies' NLL, which keeps DPO from
        # lowering the likelihood of the right answers along with the wrong ones
        return -F.logsigmoid(margins).mean() - self.sft_weight * chosen_logp.mean()

    @torch.no_grad()
    def evaluate(self, model, device: str) -> dict:
        m = torch.cat([self.margins(model, self.heldout[k : k + 16], self.ref_heldout[k : k + 16], device)[0]
                       for k in range(0, len(self.heldout), 16)])
        return {"heldout_reward_margin": round(float(m.mean()), 4),
                "heldout_preference_accuracy": accuracy(m.cpu().numpy())}


def inputs_digest(init: str, examples: list[Conversation]) -> str:
    """What a stage's checkpoint was made from: the init model's weights and the examples."""
    h = hashlib.sha256(sha256_file(checkpoint_folder(init) / MODEL).encode())
    for c in examples:
        h.update(json.dumps([c.id, c.messages, c.chosen, c.rejected], ensure_ascii=False).encode())
    return h.hexdigest()


# ------------------------------------------------------------------ judged figures
def judged_prompts(objective, n: int) -> list[tuple[list[dict], str | None]]:
    """Up to ``n`` held-out prompts with their reference answers (the last assistant turn, or the
    chosen reply of a pair)."""
    out = []
    for c in objective.heldout_conversations[:n]:
        if c.is_pair:
            out.append((c.messages, c.chosen))
        elif c.messages[-1]["role"] == "assistant":
            out.append((c.messages[:-1], c.messages[-1]["content"]))
    return out


def replies(model, template, prompts, cfg: PostTrainConfig, device: str) -> list[str]:
    return [generate_reply(model, template, p, cfg.max_new_tokens, 0.0, device=device) for p, _ in prompts]


def exact_match(prompts, answers: list[str]) -> float:
    return round(sum(a.strip() == (ref or "").strip() for (_, ref), a in zip(prompts, answers)) / max(1, len(prompts)), 4)


def judge(cfg: PostTrainConfig, prompts, answers: list[str], others: list[str] | None = None) -> dict:
    """The task's judged figures: mean score; against ``others`` (the reference model's replies),
    wins, ties, losses and the win rate (ties count half)."""
    from corpus.trainer.tasks import task

    t = task(cfg.task)
    mine = [t.score(p, a) for (p, _), a in zip(prompts, answers)]
    out = {"task_score": round(float(np.mean(mine)), 4)}
    if others is not None:
        theirs = [t.score(p, a) for (p, _), a in zip(prompts, others)]
        wins = sum(a > b for a, b in zip(mine, theirs))
        ties = sum(a == b for a, b in zip(mine, theirs))
        out |= {"wins": wins, "ties": ties, "losses": len(mine) - wins - ties,
                "win_rate": round((wins + ties / 2) / max(1, len(mine)), 4), "reference_task_score":
                round(float(np.mean(theirs)), 4)}
    return out


# ------------------------------------------------------------------ the loop
STAGES = {"sft": SFT, "reward": Reward, "dpo": DPO}


def post_train(stage: str, out_dir: str | Path, cfg: PostTrainConfig, stop_at: int | None = None) -> dict:
    """Run (or resume) the post-training ``stage`` (sft, reward or dpo) from ``cfg.init`` into
    ``out_dir``; ``stop_at`` ends this run earlier, as an interruption would."""
    from corpus.trainer.train import lr_at, make_optimizer

    out_dir = Path(out_dir)
    t0 = time.time()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    dtype = autocast_dtype(cfg, device)
    if not cfg.init:
        raise ValueError(f"{stage}: no init checkpoint to start from")
    base, state = load_model(cfg.init, device)
    if state["kind"] != "gpt":
        raise ValueError(f"{cfg.init} is a {state['kind']} model; {stage} starts from a language model")
    tokenizer = checkpoint_tokenizer(state)
    template = ChatTemplate(tokenizer)
    if tokenizer.vocab_size > base.config.vocab_size:
        raise ValueError(f"{cfg.init}: the tokenizer has {tokenizer.vocab_size} pieces, the model only "
                         f"{base.config.vocab_size} embeddings")
    cls = STAGES[stage]
    train_set, heldout, counts = load_examples(cfg, cls.pairs, out_dir / "task-data.jsonl")
    out_dir.mkdir(parents=True, exist_ok=True)
    block = base.block_size
    torch.manual_seed(cfg.seed)
    if stage == "reward":
        model = RewardModel(base.config).to(device)
        model.gpt.load_state_dict(base.state_dict())
        objective = Reward(template, train_set, heldout, block)
    elif stage == "dpo":
        model = base
        reference = copy.deepcopy(base).eval().requires_grad_(False)
        objective = DPO(template, train_set, heldout, block, reference, cfg.beta, cfg.sft_weight, device, dtype)
    else:
        model = base
        objective = SFT(template, train_set, heldout, block, cfg.seed)
    objective.heldout_conversations = heldout
    optimizer = make_optimizer(model, cfg, device)
    checkpoint = out_dir / CHECKPOINT
    inputs = inputs_digest(cfg.init, train_set + heldout)
    if (settled_dir(checkpoint) / "meta.json").exists() and read_meta(checkpoint).get("inputs") != inputs:
        raise ValueError(f"{checkpoint} was trained from another init checkpoint or other examples; "
                         f"remove {out_dir} to start over")
    progress: Progress = resume(checkpoint, model, optimizer, cfg, 1, device)
    order = EpochOrder(objective.items, cfg.seed)
    logger.info(f"{stage}: from {cfg.init}, {counts['train']} training and {counts['heldout']} held-out "
                f"{'pairs' if cls.pairs else 'conversations'}, {cfg.max_steps} steps of {cfg.batch_size}"
                + (f"; resuming at step {progress.step}" if progress.step else ""))
    judged = judged_prompts(objective, cfg.judged) if cfg.judged and stage != "reward" else []
    before = progress.history[0] if progress.history else None
    if before is None:
        model.eval()
        with autocast(device, dtype):
            before = {"step": 0, **objective.evaluate(model, device)}
        if judged:
            answers = replies(model, template, judged, cfg, device)
            before["heldout_exact_match"] = exact_match(judged, answers)
            if cfg.task:
                before |= judge(cfg, judged, answers)
        model.train()
        progress.history.append(before)
        logger.info(f"{stage}: before: {before}")

    def save():
        save_checkpoint(checkpoint, model, optimizer, cfg, progress.step, progress.position,
                        {"stage": stage, "init": cfg.init, "inputs": inputs, "tokenizer": state["tokenizer"],
                         "tokenizer_model": state.get("tokenizer_model"), "vocab_size": state["vocab_size"],
                         "eos_id": state["eos_id"], "history": progress.history, "world": 1,
                         "elapsed_s": progress.elapsed_s + time.time() - t0, "train_loss": progress.train_loss})

    until = cfg.max_steps if stop_at is None else min(stop_at, cfg.max_steps)
    model.train()
    while progress.step < until:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(progress.step, cfg)
        items = order.indices(progress.position, cfg.batch_size)
        with autocast(device, dtype):
            loss = objective.loss(model, items, device)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        progress.position += cfg.batch_size
        step = progress.step
        eval_now = step % cfg.eval_interval == 0 or step == cfg.max_steps
        if eval_now or step % (cfg.checkpoint_interval or cfg.eval_interval) == 0 or step == until:
            progress.train_loss = round(loss.item(), 4)
        if eval_now:
            model.eval()
            with autocast(device, dtype):
                figures = objective.evaluate(model, device)
            progress.history.append({"step": step, "train_loss": progress.train_loss, **figures})
            model.train()
            logger.info(f"{stage}: step {step}/{cfg.max_steps} {progress.history[-1]}")
        if eval_now or step % (cfg.checkpoint_interval or cfg.eval_interval) == 0:
            save()
    if progress.step < cfg.max_steps:
        save()
        return {"stage": stage, "steps": progress.step, "finished": False}
    after = dict(progress.history[-1])
    if judged:
        model.eval()
        answers = replies(model, template, judged, cfg, device)
        after["heldout_exact_match"] = exact_match(judged, answers)
        if cfg.task:
            others = replies(objective.reference, template, judged, cfg, device) if stage == "dpo" else None
            after |= judge(cfg, judged, answers, others)
        examples = [{"prompt": p[-1]["content"], "reference": ref, "reply": a}
                    for (p, ref), a in list(zip(judged, answers))[:5]]
    else:
        examples = []
    card = {
        "stage": stage, "init": cfg.init, "checkpoint": str(checkpoint),
        "settings": asdict(cfg), "data": counts | objective.stats,
        "before": before, "after": after, "history": progress.history, "examples": examples,
        "figures": [k for k in FIGURES if k in before or k in after],
        "seconds": round(progress.elapsed_s + time.time() - t0, 1),
    }
    write_json(out_dir / "card.json", card)
    (out_dir / "card.md").write_text(card_markdown(card), encoding="utf-8")
    result = {"stage": stage, "steps": progress.step, "finished": True, "checkpoint": str(checkpoint),
              "card": str(out_dir / "card.json"), "before": before, "after": after,
              "train": counts["train"], "heldout": counts["heldout"], "dropped": counts["dropped"]}
    write_json(out_dir / "result.json", result)
    logger.info(f"{stage}: before {_brief(before)} → after {_brief(after)}")
    return result


FIGURES = ("heldout_loss", "heldout_exact_match", "heldout_accuracy", "heldout_margin", "heldout_reward_margin",
           "heldout_preference_accuracy", "task_score", "win_rate")


def _brief(figures: dict) -> str:
    return ", ".join(f"{k} {figures[k]}" for k in FIGURES if k in figures)


def card_markdown(card: dict) -> str:
    """The card as Markdown: what was trained from what, on which data, and the held-out figures."""
    rows = [f"| {k} | {card['before'].get(k, '')} | {card['after'].get(k, '')} |" for k in card["figures"]]
    data = card["data"]
    lines = [
        f"# {card['stage']}: model card", "",
        f"- started from: `{card['init']}`",
        f"- data: `{data['data']}`: {data['read']} read, {data['train']} trained on, {data['heldout']} held out"
        + (f" ({data['heldout_unused']} more held out, unused: max_heldout)" if data.get("heldout_unused") else "")
        + (f"; left out: {data['dropped']}" if data["dropped"] else ""),
        f"- steps: {card['settings']['max_steps']} of {card['settings']['batch_size']}, learning rate "
        f"{card['settings']['learning_rate']}; {card['seconds']} s",
        "", "| held-out figure | before | after |", "| --- | --- | --- |", *rows,
    ]
    if card["examples"]:
        lines += ["", "Held-out examples (greedy replies after training):", ""]
        lines += [f"- {e['prompt']!r} → {e['reply']!r} (reference {e['reference']!r})" for e in card["examples"]]
    return "\n".join(lines) + "\n"
