"""``corpus chat``: a conversation with a checkpoint in the terminal, or replies to a file of prompts."""

from __future__ import annotations

import json

from corpus.core.chat import ChatFormatError, from_record
from corpus.core.io import atomic_path, run_path
from corpus.trainer.checkpoint import checkpoint_tokenizer, load_model
from corpus.trainer.runtime import pick_device
from corpus.trainer.template import ChatTemplate, generate_reply


def _load(checkpoint, device: str):
    device = pick_device(device)
    model, state = load_model(checkpoint, device)
    if state["kind"] != "gpt":
        raise ValueError(f"{checkpoint} is a {state['kind']} model, not one that writes replies")
    return model.eval(), ChatTemplate(checkpoint_tokenizer(state)), device


def answer_file(checkpoint, prompts, output, temperature: float = 0.0, max_tokens: int = 256, seed: int = 1337,
                device: str = "auto") -> int:
    """Each record of the .jsonl ``prompts`` (``messages`` in any chat format, ending with the
    user's turn) written to ``output`` with the model's ``"reply"`` added, in order; a record that
    is not a prompt is an error naming its line, before anything is written."""
    model, template, device = _load(checkpoint, device)
    records = []
    with run_path(prompts).open("r", encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                messages = from_record(record).messages
            except (json.JSONDecodeError, ChatFormatError) as e:
                raise ValueError(f"{prompts}:{number}: not a prompt ({e})") from None
            if not messages or messages[-1]["role"] != "user":
                raise ValueError(f"{prompts}:{number}: the messages must end with the user's turn")
            records.append((record, messages))
    with atomic_path(output) as tmp, open(tmp, "w", encoding="utf-8") as out:
        for k, (record, messages) in enumerate(records):
            reply = generate_reply(model, template, messages, max_tokens, temperature, seed=seed + k, device=device)
            out.write(json.dumps(record | {"reply": reply}, ensure_ascii=False) + "\n")
    return len(records)


def converse(checkpoint, temperature: float = 0.7, max_tokens: int = 256, seed: int = 1337, device: str = "auto",
             system: str | None = None) -> None:
    """Read a turn, answer it, keep the conversation; ``/reset`` starts over, an empty line or end of
    input ends it."""
    model, template, device = _load(checkpoint, device)
    start = [{"role": "system", "content": system}] if system else []
    messages = list(start)
    print("(/reset starts over; an empty line or Ctrl-D ends)")
    while True:
        try:
            text = input("you> ")
        except EOFError:
            print()
            return
        if not text.strip():
            return
        if text.strip() == "/reset":
            messages = list(start)
            continue
        messages.append({"role": "user", "content": text})
        reply = generate_reply(model, template, messages, max_tokens, temperature, seed=seed + len(messages),
                               device=device)
        messages.append({"role": "assistant", "content": reply})
        print(f"model> {reply}")
