"""Telegram's rate limits as arithmetic: when may the next message to a chat, or from the bot, go out?

Telegram allows about 30 messages a second overall, about one a second per private chat (short bursts
are fine) and 20 a minute per group, and answers 429 to a bot that goes faster. Every process sharing
the database must stay within those limits *together*, so the state lives in two tables
(``send_budget`` for the bot, ``send_chats`` per chat) and this module only does the arithmetic on it.

The arithmetic is the generic cell rate algorithm (GCRA), a token bucket that needs one timestamp per
bucket instead of a token count and a refill time: the *theoretical arrival time* ``tat`` is when the
bucket would be empty again at the sustained rate. A message may go at ``t`` when
``t >= tat - tolerance``; sending it moves ``tat`` to ``max(tat, t) + interval``. In any window of
``W`` seconds at most ``burst + W / interval`` messages pass, which is how the paces below are chosen.

Our limits sit below the fake's (and Telegram's) on purpose: a request planned for ``t`` reaches
Telegram a few milliseconds later, and two planned a second apart can arrive closer together. One token
of headroom absorbs that jitter, so at the configured rates no 429 is ever provoked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Pace:
    """A sustained rate with a burst: at most ``burst`` messages at once, then one per ``interval``."""

    interval: timedelta
    burst: int

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.burst < 1:
            raise ValueError("a pace needs a positive interval and a burst of at least 1")

    @property
    def tolerance(self) -> timedelta:
        """How far ``tat`` may lie ahead of now while a message still conforms."""
        return self.interval * (self.burst - 1)

    def earliest(self, tat: datetime | None, now: datetime) -> datetime:
        """Return the earliest moment, not before ``now``, at which the next message conforms."""
        if tat is None:
            return now
        return max(now, tat - self.tolerance)

    def spend(self, tat: datetime | None, at: datetime) -> datetime:
        """Return the new ``tat`` after a message sent at ``at``."""
        return max(tat or at, at) + self.interval


PRIVATE_CHAT_PACE = Pace(interval=timedelta(seconds=1), burst=3)
"""About one message a second per private chat (Telegram's FAQ); a burst of 3 lets an answer, its edit and
a reply go out together, one token under the 4 a strict limiter would allow."""

GROUP_CHAT_PACE = Pace(interval=timedelta(seconds=60 / 17), burst=3)
"""At most 20 messages in any minute per group: a burst of 3, then one every 60/17 s (3 + 17 = 20)."""


def chat_pace(chat_id: int) -> Pace:
    """Return the pace of a chat: private chats have positive ids, groups and supergroups negative ones."""
    return PRIVATE_CHAT_PACE if chat_id > 0 else GROUP_CHAT_PACE


def bot_pace(send_rate: float) -> Pace:
    """Return the bot's overall pace for ``SEND_RATE`` messages a second.

    The burst is a fifth of a second's worth (at least one): enough to catch up after a short stall of
    the event loop, small enough that a burst never meets Telegram's own 30-message bucket half empty.
    """
    if send_rate <= 0:
        raise ValueError("SEND_RATE must be positive")
    return Pace(interval=timedelta(seconds=1 / send_rate), burst=max(1, math.floor(send_rate / 5)))
