"""wgkill.recordclass behaves as the dataclasses it stands in for (the type checker is shown
dataclasses itself, so any difference would be one it cannot see): each case is built with both."""

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from wgkill import recordclass

APIS = {"dataclasses": dataclasses, "recordclass": recordclass}


def _classes(api: ModuleType) -> dict[str, Any]:
    dc: Callable[..., Any] = api.dataclass
    field: Callable[..., Any] = api.field

    @dc(frozen=True)
    class Point:
        x: int
        y: int = 0
        tags: tuple[str, ...] = ()
        cache: tuple[int, ...] = field(default=(), compare=False, repr=False)

    @dc
    class Box:
        name: str
        inner: Point
        items: list[Point] = field(default_factory=list)
        seen: dict[str, int] = field(default=None)  # type: ignore[assignment]

    @dc(frozen=True)
    class Base:
        a: int
        b: str = "b"

    @dc(frozen=True)
    class Derived(Base):
        c: float = 1.5
        a: int = 7  # redefined: keeps its place, gains a default

    @dc
    class Normalised:
        text: str
        length: int = 0

        def __post_init__(self) -> None:
            self.text = self.text.strip()
            self.length = len(self.text)

    @dc(frozen=True)
    class Own:
        value: int

        def __repr__(self) -> str:
            return "own"

    return {"Point": Point, "Box": Box, "Base": Base, "Derived": Derived,
            "Normalised": Normalised, "Own": Own}


@pytest.fixture(params=sorted(APIS))
def api(request: pytest.FixtureRequest) -> tuple[ModuleType, dict[str, Any]]:
    module = APIS[request.param]
    return module, _classes(module)


def _fingerprint(api: tuple[ModuleType, dict[str, Any]]) -> dict[str, object]:
    """Everything observable about the cases, as plain values."""
    module, c = api
    p = c["Point"](1)
    q = c["Point"](x=1, y=0)
    d = c["Derived"]()
    n = c["Normalised"]("  hi  ")
    box = c["Box"]("b", p, [p, c["Point"](2, 3, ("t",))])
    return {
        "repr": [repr(p), repr(d), repr(n), repr(c["Own"](1)), repr(box)],
        "eq": [p == q, p == c["Point"](2), p == (1, 0, ()), hash(p) == hash(q)],
        "factory": c["Box"]("a", p).items is not c["Box"]("a", p).items,
        "not compared": [c["Point"](1, cache=(1,)) == p, hash(c["Point"](1, cache=(1,))) == hash(p)],
        "order": [d.a, d.b, d.c],
        "class default": [c["Point"].y, hasattr(c["Point"], "tags"), c["Box"].seen],
        "post_init": [n.text, n.length, module.replace(n, text=" abc ").length],
        "replace": repr(module.replace(p, y=5)),
        "asdict": module.asdict(box),
        "box unhashable": c["Box"].__hash__ is None,
    }


def test_the_same_observable_behaviour_as_dataclasses() -> None:
    ours = _fingerprint((recordclass, _classes(recordclass)))
    assert ours == _fingerprint((dataclasses, _classes(dataclasses)))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda c: c["Point"](), "missing"),
        (lambda c: c["Point"](1, 2, (), (), 5), "positional"),
        (lambda c: c["Point"](1, x=1), "multiple values"),
        (lambda c: c["Point"](1, z=1), "unexpected keyword"),
    ],
)
def test_bad_calls_are_refused_as_by_dataclasses(
        api: tuple[ModuleType, dict[str, Any]], make: Callable[[dict[str, Any]], object],
        message: str) -> None:
    with pytest.raises(TypeError, match=message):
        make(api[1])


def test_frozen_refuses_assignment_and_deletion(api: tuple[ModuleType, dict[str, Any]]) -> None:
    module, c = api
    p = c["Point"](1)
    with pytest.raises(module.FrozenInstanceError):
        p.x = 2
    with pytest.raises(AttributeError):  # FrozenInstanceError is one
        del p.x
    assert p.x == 1


def test_a_default_before_a_field_without_one_is_refused(api: tuple[ModuleType, dict[str, Any]]) -> None:
    module, _ = api
    with pytest.raises(TypeError, match="non-default argument"):
        @module.dataclass
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]


def test_replace_refuses_an_unknown_field(api: tuple[ModuleType, dict[str, Any]]) -> None:
    module, c = api
    with pytest.raises(TypeError):
        module.replace(c["Point"](1), z=3)
