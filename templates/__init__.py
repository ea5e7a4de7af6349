"""Jinja templates (rule text and config text only); installed as ``wgkill.templates``."""
