"""Conversations fit to train on: ``conversation_filter``.

A chat document (``chat_reader``'s text, ``corpus.core.chat.render``) is parsed back and judged
by ``corpus.core.chat.check``; a dropped one says why: ``unparsable`` (a step broke its turns),
``empty_turn``, ``special_token_in_turn``, ``turn_too_long``, ``no_user_turn``,
``no_assistant_turn``, ``roles_out_of_order``.
"""

from __future__ import annotations

from datatrove.data import Document

from corpus.core import chat
from corpus.core.funnel import Filter
from corpus.core.registry import register


@register("conversation_filter")
class ConversationFilter(Filter):
    """Drops chat documents that are not a well-formed conversation (``corpus.core.chat.check``:
    empty or over-long turns, control tokens in a turn, no user or assistant turn, roles out of
    order) or no longer parse; keeps the rest unchanged."""

    name = "💬 conversation_filter"

    def __init__(self, max_turn_chars: int = 20000):
        super().__init__()
        if max_turn_chars < 1:
            raise ValueError("max_turn_chars must be at least 1")
        self.max_turn_chars = max_turn_chars

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        try:
            conv = chat.parse(doc.text)
        except chat.ChatFormatError as e:
            return False, e.reason
        reason = chat.check(conv, self.max_turn_chars)
        return True if reason is None else (False, reason)
