"""Instruction and chat data in one conversation format.

Every chat format the platform reads (OpenAI ``messages``, ShareGPT ``conversations``, Alpaca
``instruction``/``input``/``output``, preference pairs with ``chosen``/``rejected``) becomes a
``Conversation``; a curated document holds its text as ``render(conv)``::

    <|system|>\\n{content}<|end|>\\n        (optional, first only)
    <|user|>\\n{content}<|end|>\\n
    <|assistant|>\\n{content}<|end|>\\n
    ...
    <|chosen|>\\n{content}<|end|>\\n       (preference pairs: the prompt, then both answers)
    <|rejected|>\\n{content}<|end|>\\n

``parse`` is its inverse, so steps that change only the content of turns (PII redaction) keep a
document readable; ``to_record`` writes a conversation back as OpenAI messages (pairs with
``chosen``/``rejected``). ``check`` says what is wrong with a conversation, as a reason for the
funnel. A record that cannot be read raises ``ChatFormatError`` with a short reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterator

ROLES = ("system", "user", "assistant")
TOKENS = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>", "end": "<|end|>"}
CHAT_TOKENS = list(TOKENS.values())  # the tokenizer reserves these
PAIR_MARKERS = {"chosen": "<|chosen|>", "rejected": "<|rejected|>"}  # only in document text of preference pairs
SPECIAL = (*CHAT_TOKENS, *PAIR_MARKERS.values())

# the "from" (ShareGPT) or "role" (OpenAI) of a message -> our role
ROLE_NAMES = {"system": "system", "developer": "system", "user": "user", "human": "user", "assistant": "assistant",
              "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
              "model": "assistant"}
# keys of a record that a format reads (the rest of a record is its metadata)
FORMAT_KEYS = {"messages": ("messages",), "sharegpt": ("conversations",), "alpaca": ("instruction", "input", "output"),
               "pair": ("prompt", "messages", "chosen", "rejected"), "text": ("text",)}


class ChatFormatError(ValueError):
    """A record or text that is not a conversation; ``reason`` says why in a few words (snake_case):
    unknown_format, no_messages, bad_message, bad_content (not a string), invalid_unicode (a lone
    surrogate), unknown_role, bad_pair, unparsable, bad_json (``read_conversations``), and
    special_token_in_turn (``render`` of content that holds a control token)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


@dataclass
class Conversation:
    messages: list[dict]  # [{"role": "user"|"assistant"|"system", "content": str}, ...]
    chosen: str | None = None  # preference pairs: messages is the prompt (ends with a user turn)
    rejected: str | None = None
    id: str | None = None

    @property
    def is_pair(self) -> bool:
        return self.chosen is not None or self.rejected is not None


# ---------------------------------------------------------------- reading records


def record_format(record) -> str:
    """Which format a record is in: messages, sharegpt, alpaca, pair, or text (a rendered
    document); ChatFormatError("unknown_format") for none of them."""
    if isinstance(record, dict):
        if "chosen" in record or "rejected" in record:
            return "pair"
        for name in ("messages", "conversations", "instruction", "text"):
            if name in record:
                return {"conversations": "sharegpt", "instruction": "alpaca"}.get(name, name)
    keys = sorted(record)[:8] if isinstance(record, dict) else type(record).__name__
    raise ChatFormatError("unknown_format", f"no messages, conversations, instruction, chosen/rejected or text: {keys}")


def _content(value, what: str) -> str:
    if not isinstance(value, str):
        raise ChatFormatError("bad_content", f"{what} is {type(value).__name__}, not a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON's "\\ud800"): no file or tokenizer holds it
        raise ChatFormatError("invalid_unicode", f"{what} is not Unicode text") from None
    return value


def _messages(items, what: str = "messages") -> list[dict]:
    """A list of {"role"/"from", "content"/"value"} as our messages."""
    if not isinstance(items, list) or not items:
        raise ChatFormatError("no_messages", f"{what} is {'empty' if items == [] else type(items).__name__}")
    out = []
    for i, m in enumerate(items):
        if not isinstance(m, dict) or not ({"role", "from"} & m.keys()) or not ({"content", "value"} & m.keys()):
            raise ChatFormatError("bad_message", f"{what}[{i}] is not a {{role, content}} mapping")
        name = m.get("role", m.get("from"))
        role = ROLE_NAMES.get(name.lower()) if isinstance(name, str) else None
        if role is None:
            raise ChatFormatError("unknown_role", f"{what}[{i}] has role {name!r}")
        out.append({"role": role, "content": _content(m.get("content", m.get("value")), f"{what}[{i}] content")})
    return out


def _answer(value, prompt: list[dict] | None, what: str) -> str | list[dict]:
    """A pair's chosen or rejected: a string, or a message list (the answer alone, or the whole
    conversation repeating the prompt: then what follows the prompt)."""
    if isinstance(value, str):
        return _content(value, what)
    messages = _messages(value, what)
    if prompt is not None and messages[:len(prompt)] == prompt and len(messages) > len(prompt):
        messages = messages[len(prompt):]
    return messages


def _pair(record: dict) -> tuple[list[dict], str, str]:
    if "chosen" not in record or "rejected" not in record:
        raise ChatFormatError("bad_pair", "a pair needs both chosen and rejected")
    prompt = record.get("prompt", record.get("messages"))
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    elif prompt is not None:
        prompt = _messages(prompt, "prompt")
    answers = [_answer(record[k], prompt, k) for k in ("chosen", "rejected")]
    if prompt is None:  # TRL's implicit prompt: full conversations that share it
        if not all(isinstance(a, list) for a in answers):
            raise ChatFormatError("bad_pair", "no prompt, and chosen/rejected are not conversations that hold it")
        chosen, rejected = answers
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, answers = chosen[:shared], [chosen[shared:], rejected[shared:]]
    out = []
    for key, answer in zip(("chosen", "rejected"), answers):
        if isinstance(answer, list):
            if len(answer) != 1 or answer[0]["role"] != "assistant":
                raise ChatFormatError("bad_pair", f"{key} is not one assistant turn after the prompt")
            answer = answer[0]["content"]
        out.append(answer)
    return prompt, out[0], out[1]


def from_record(record: dict, id: str | None = None) -> Conversation:
    """A conversation from a record in any format the platform reads (see ``record_format``); its
    id is ``id``, else the record's own ``id``. Raises ChatFormatError for anything else."""
    kind = record_format(record)
    if id is None and record.get("id") is not None:
        id = str(record["id"])
    if kind == "pair":
        prompt, chosen, rejected = _pair(record)
        return Conversation(prompt, chosen=chosen, rejected=rejected, id=id)
    if kind == "messages":
        return Conversation(_messages(record["messages"]), id=id)
    if kind == "sharegpt":
        return Conversation(_messages(record["conversations"], "conversations"), id=id)
    if kind == "alpaca":
        prompt = _content(record["instruction"], "instruction")
        extra = record.get("input")
        if extra is not None and _content(extra, "input").strip():
            prompt = f"{prompt}\n\n{extra}"
        answer = _content(record.get("output"), "output")
        return Conversation([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], id=id)
    conv = parse(_content(record["text"], "text"))
    conv.id = id
    return conv


# ---------------------------------------------------------------- document text


def _block(token: str, content: str) -> str:
    return f"{token}\n{content}{TOKENS['end']}\n"


def render(conv: Conversation) -> str:
    """The document text of a conversation (see the module's docstring). Content that holds a
    control token would read back as other turns: ChatFormatError("special_token_in_turn")."""
    turns = [(TOKENS[m["role"]], m["content"]) for m in conv.messages]
    if conv.is_pair:
        if conv.chosen is None or conv.rejected is None:
            raise ChatFormatError("bad_pair", "a pair needs both chosen and rejected")
        turns += [(PAIR_MARKERS["chosen"], conv.chosen), (PAIR_MARKERS["rejected"], conv.rejected)]
    for _, content in turns:
        if _has_special(content):
            raise ChatFormatError("special_token_in_turn", f"content {content[:60]!r}")
    return "".join(_block(token, content) for token, content in turns)


_TOKEN_ROLE = {**{t: r for r, t in TOKENS.items() if r != "end"}, **{t: k for k, t in PAIR_MARKERS.items()}}
_BLOCK = re.compile("(" + "|".join(map(re.escape, _TOKEN_ROLE)) + ")\n(.*?)" + re.escape(TOKENS["end"]) + r"\s*", re.S)


def parse(text: str) -> Conversation:
    """The conversation of a rendered document; ChatFormatError("unparsable") for other text.
    White space around the blocks is allowed (a step may have trimmed the final newline)."""
    pos = len(text) - len(text.lstrip())
    messages, answers = [], {}
    while pos < len(text):
        m = _BLOCK.match(text, pos)
        if m is None:
            raise ChatFormatError("unparsable", f"no turn at character {pos}: {text[pos:pos + 40]!r}")
        role, content = _TOKEN_ROLE[m.group(1)], m.group(2)
        expected = "chosen" if not answers else "rejected" if len(answers) == 1 else None
        if role in PAIR_MARKERS and role == expected:
            answers[role] = content
        elif role in ROLES and not answers:
            messages.append({"role": role, "content": content})
        else:
            raise ChatFormatError("unparsable", f"{m.group(1)} out of place at character {pos}")
        pos = m.end()
    if not messages and not answers:
        raise ChatFormatError("unparsable", "no turn")
    if len(answers) == 1:
        raise ChatFormatError("unparsable", "chosen without rejected")
    return Conversation(messages, answers.get("chosen"), answers.get("rejected"))


def to_record(conv: Conversation) -> dict:
    """{"messages": [...]}, or for a pair {"messages": prompt, "chosen": str, "rejected": str};
    with "id" when the conversation has one."""
    record: dict = {"id": conv.id} if conv.id is not None else {}
    record["messages"] = [{"role": m["role"], "content": m["content"]} for m in conv.messages]
    if conv.is_pair:
        record.update(chosen=conv.chosen, rejected=conv.rejected)
    return record


# ---------------------------------------------------------------- checks


def _has_special(content: str) -> bool:
    return "<|" in content and any(token in content for token in SPECIAL)


def check(conv: Conversation, max_turn_chars: int | None = None) -> str | None:
    """None for a conversation fit to train on, else the first reason, in this order: empty_turn
    (blank content, or a blank or missing chosen/rejected), special_token_in_turn, turn_too_long
    (over ``max_turn_chars``), no_user_turn, no_assistant_turn (a conversation must end with an
    assistant turn), roles_out_of_order (a system turn only first, then user and assistant in
    turn, starting with user). A pair is judged as its prompt followed by one assistant turn, so
    its prompt must end with a user turn."""
    contents = [m["content"] for m in conv.messages]
    if conv.is_pair:
        contents += [conv.chosen, conv.rejected]
    if any(c is None or not c.strip() for c in contents):
        return "empty_turn"
    if any(_has_special(c) for c in contents):
        return "special_token_in_turn"
    if max_turn_chars is not None and any(len(c) > max_turn_chars for c in contents):
        return "turn_too_long"
    roles = [m["role"] for m in conv.messages] + (["assistant"] if conv.is_pair else [])
    if "user" not in roles:
        return "no_user_turn"
    if roles[-1] != "assistant":
        return "no_assistant_turn"
    body = roles[1:] if roles[0] == "system" else roles
    if any(role != ("user", "assistant")[i % 2] for i, role in enumerate(body)):
        return "roles_out_of_order"
    return None


# ---------------------------------------------------------------- files


def json_records(f) -> Iterator[tuple[int, bytes | None, object]]:
    """(number, line, record) of a binary file of JSON Lines (number: the line's, from 1; blank
    lines passed over) or of one JSON list (number: the item's, from 1; line None). A line that is
    not JSON gives its ``json.JSONDecodeError`` (or ``UnicodeDecodeError``) as its record; a list
    file that is not JSON raises it."""
    first = True
    for number, line in enumerate(f, 1):
        if not line.strip():
            continue
        if first and line.lstrip().startswith(b"["):  # a JSON list: the whole file is one value
            for i, item in enumerate(json.loads(line + f.read()), 1):
                yield i, None, item
            return
        first = False
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            record = e
        yield number, line, record


def read_conversations(path, *, skip_bad: bool = False, skipped: dict | None = None) -> Iterator[Conversation]:
    """The conversations of a .jsonl, .jsonl.gz (any compression fsspec infers) or .json (a list)
    file, a local path or an fsspec URL: each record through ``from_record``, its id the record's
    own or ``<file name>:<line>`` (for a JSON list, the item's number from 1). A bad record raises
    ChatFormatError naming the file and line; with ``skip_bad`` it is counted, logged and passed
    over (the counts by reason are logged at the end, and added to ``skipped`` if given)."""
    import fsspec
    from loguru import logger

    name = PurePosixPath(str(path)).name
    bad: dict[str, int] = {} if skipped is None else skipped
    with fsspec.open(str(path), "rb", compression="infer") as f:
        for number, _, record in json_records(f):
            try:
                if isinstance(record, Exception):
                    raise ChatFormatError("bad_json", str(record))
                has_id = isinstance(record, dict) and record.get("id") is not None
                conv = from_record(record, None if has_id else f"{name}:{number}")
            except ChatFormatError as e:
                if not skip_bad:
                    raise ChatFormatError(e.reason, f"{path}:{number}: {e.detail}") from None
                bad[e.reason] = bad.get(e.reason, 0) + 1
                logger.warning(f"read_conversations: skipped ({e.reason}) {path}:{number}: {e.detail}")
                continue
            yield conv
    if bad:
        logger.warning(f"read_conversations: {path}: skipped {sum(bad.values())} records {bad}")
