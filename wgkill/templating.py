"""The Jinja environment: strict, so a missing variable is an error and never an empty rule."""

from __future__ import annotations

import os
from functools import cache

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a hook pays ~4 ms)
if TYPE_CHECKING:
    from typing import Any

TEMPLATE_PACKAGE = "wgkill.templates"


def template_dir() -> str:
    """The directory of the templates (the package ``wgkill.templates``, installed as files: Jinja's
    FileSystemLoader needs them so), found from its ``__file__``: importlib.resources would cost a
    hook about 20 ms of imports."""
    from importlib import import_module

    where = import_module(TEMPLATE_PACKAGE).__file__
    if where is None:
        raise RuntimeError(f"{TEMPLATE_PACKAGE} is not installed as files")
    return os.path.dirname(os.path.abspath(where))


@cache
def environment() -> Any:
    """Build the environment once per process; jinja2 is imported only when rendering."""
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - rule and config text, never HTML
    )


def render(name: str, **context: Any) -> str:
    text: str = environment().get_template(name).render(**context)
    return text
