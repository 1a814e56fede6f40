"""Slack incoming webhooks as the sink enforces them (limits and sources in the package
docstring)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

SLACK_MIN_INTERVAL_S = 1.0


SLACK_MAX_BLOCKS = 50


SLACK_MAX_SECTION_TEXT = 3000


def slack_payload_error(body: bytes, content_type: str) -> str | None:
    """Slack's error string for an incoming-webhook body, or None when Slack would post it."""
    try:
        text = body.decode()
        if "application/x-www-form-urlencoded" in content_type.lower():
            text = dict(parse_qsl(text)).get("payload", text)  # `payload=...`, or a raw JSON body
        payload = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "invalid_payload"
    if not isinstance(payload, dict):
        return "invalid_payload"
    blocks = payload.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list):
            return "invalid_blocks_format"
        if len(blocks) > SLACK_MAX_BLOCKS:
            return "invalid_blocks"
        for block in blocks:
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                return "invalid_blocks"
            block_text = block.get("text")
            if isinstance(block_text, dict) and len(str(block_text.get("text", ""))) > (
                SLACK_MAX_SECTION_TEXT
            ):
                return "invalid_blocks"
    has_text = isinstance(payload.get("text"), str) and payload["text"].strip() != ""
    if not (has_text or blocks or payload.get("attachments")):
        return "no_text"
    return None
