"""Test doubles that speak real protocols, so end-to-end tests exercise the same code paths as production.

`bot_api_spec` checks requests against the official Bot API description; `bot_api_server` is a fake
Telegram Bot API over real HTTP that python-telegram-bot can talk to unmodified.
"""

from tests.fakes.bot_api_server import (
    BucketLimit,
    FakeBotApi,
    FakeBotApiThread,
    FakeUser,
    FloodLimits,
    RecordedRequest,
    StormWindow,
    ThrottledCall,
    WebhookDelivery,
)
from tests.fakes.bot_api_spec import SPEC_AVAILABLE, find_spec_path, validate_request

__all__ = [
    "SPEC_AVAILABLE",
    "BucketLimit",
    "FakeBotApi",
    "FakeBotApiThread",
    "FakeUser",
    "FloodLimits",
    "RecordedRequest",
    "StormWindow",
    "ThrottledCall",
    "WebhookDelivery",
    "find_spec_path",
    "validate_request",
]
