"""Channel configuration from ``channels/*.yaml`` (no secrets: those come from settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from outreach.errors import ConfigError
from outreach.rendering.lint import DEFAULT_MAX_SMS_SEGMENTS, LintPolicy


def read_channel_file(channels_dir: Path, channel: str) -> dict[str, Any]:
    path = channels_dir / f"{channel}.yaml"
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return raw


def lint_policy(channels_dir: Path) -> LintPolicy:
    sms = read_channel_file(channels_dir, "sms")
    maximum = sms.get("max_segments", DEFAULT_MAX_SMS_SEGMENTS)
    if not isinstance(maximum, int) or not 1 <= maximum <= 10:
        raise ConfigError(f"{channels_dir / 'sms.yaml'}: max_segments must be a whole number 1-10")
    return LintPolicy(max_sms_segments=maximum)
