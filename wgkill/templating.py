"""The Jinja environment: strict, so a missing variable is an error and never an empty rule."""

from functools import cache
from typing import Any

TEMPLATE_PACKAGE = "wgkill.templates"


@cache
def environment() -> Any:
    """Build the environment once per process; jinja2 is imported only when rendering."""
    from importlib.resources import files

    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(files(TEMPLATE_PACKAGE))),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - rule and config text, never HTML
    )


def render(name: str, **context: Any) -> str:
    text: str = environment().get_template(name).render(**context)
    return text
