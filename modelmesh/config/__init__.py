"""Typed settings shared by every mode (env vars named as in the reference, plus flags)."""

from modelmesh.config.settings import SettingsError, load_settings, setting

__all__ = ["SettingsError", "load_settings", "setting"]
