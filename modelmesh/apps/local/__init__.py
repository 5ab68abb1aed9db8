"""`modelmesh local`: the all-in-one mode for one machine (see app.py and local.md)."""

from __future__ import annotations


def make_app(settings):
    from modelmesh.apps.local.app import LocalApp

    return LocalApp(settings)
