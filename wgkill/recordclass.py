"""The dataclass API for wgkill's typed records, without the ``dataclasses`` module.

Every hook is a fresh interpreter, and ``dataclasses`` cost each one about 9 ms to
import (it imports ``inspect``, hence ``ast``, ``dis`` and ``tokenize``) and about
0.3 ms per class (it compiles each class's methods with ``exec``): some 25 ms of a
hook that does 15 ms of work. Here the same methods are closures over the field
names. The type checker is shown ``dataclasses`` itself (the branch below), so fields,
defaults, ``frozen`` and ``replace`` are checked exactly as for a dataclass;
tests/test_recordclass.py holds the two to the same behaviour.

What is kept: fields from annotations in definition order, base classes' first;
defaults, ``field(default=...)`` and ``field(default_factory=...)``; ``__init__``
(positional or keyword, then ``__post_init__``), ``__repr__``, ``__eq__``, and for
``frozen=True`` assignment refused and ``__hash__`` from the fields (without it,
``__hash__`` is None, as a dataclass's); a method the class defines itself is kept.
Not kept, as nothing here uses them: ``order``, ``slots``, ``kw_only``, ``InitVar``,
``field()``'s other options, ``fields()``.
"""

from __future__ import annotations

__all__ = ["FrozenInstanceError", "asdict", "dataclass", "field", "replace"]

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from dataclasses import FrozenInstanceError, asdict, dataclass, field, replace
else:
    _MISSING = object()
    _FIELDS = "__record_fields__"  # every field's _Field, in order, on every record class

    class FrozenInstanceError(AttributeError):
        """Assigning to a field of a frozen record (as ``dataclasses.FrozenInstanceError``)."""

    class _Field:
        """A field: what ``field()`` returns, named when the class is made."""

        __slots__ = ("compare", "default", "factory", "name", "repr")

        def __init__(self, default, factory, compare=True, repr=True):
            self.default, self.factory, self.compare, self.repr = default, factory, compare, repr
            self.name = ""

    def field(*, default=_MISSING, default_factory=_MISSING, compare=True, repr=True):
        if default is not _MISSING and default_factory is not _MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory, compare, repr)

    def dataclass(cls=None, /, *, frozen=False):
        def wrap(cls):
            return _make(cls, frozen)
        return wrap if cls is None else wrap(cls)

    def replace(obj, /, **changes):
        """A copy of ``obj`` with ``changes``, made through ``__init__`` (so ``__post_init__`` runs)."""
        for spec in getattr(obj, _FIELDS):
            if spec.name not in changes:
                changes[spec.name] = getattr(obj, spec.name)
        return obj.__class__(**changes)

    def asdict(obj):
        """``obj``'s fields as a dict, records, lists, tuples and dicts within converted too."""
        return _plain(obj)

    def _plain(value):
        if hasattr(type(value), _FIELDS):
            return {spec.name: _plain(getattr(value, spec.name)) for spec in getattr(value, _FIELDS)}
        if isinstance(value, (list, tuple)):
            return type(value)(_plain(item) for item in value)
        if isinstance(value, dict):
            return {_plain(key): _plain(item) for key, item in value.items()}
        return value

    def _own_fields(cls):
        """The fields ``cls`` itself annotates (not ClassVars), in order."""
        found = []
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (inspect is what we avoid)
        for name, annotation in own.items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            spec = cls.__dict__.get(name, _MISSING)
            if isinstance(spec, _Field):
                if spec.default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, spec.default)
            else:
                spec = _Field(spec, _MISSING)
            spec.name = name
            found.append(spec)
        return found

    def _fields(cls):
        """Every field of ``cls``: its bases' first, a redefined one keeping its place."""
        specs = {}
        for base in reversed(cls.__mro__[1:]):
            for spec in base.__dict__.get(_FIELDS, ()):
                specs[spec.name] = spec
        for spec in _own_fields(cls):
            specs[spec.name] = spec
        fields = tuple(specs.values())
        seen_default = False
        for spec in fields:
            if spec.default is _MISSING and spec.factory is _MISSING:
                if seen_default:
                    raise TypeError(f"non-default argument {spec.name!r} follows default argument")
            else:
                seen_default = True
        return fields

    def _make(cls, frozen):
        fields = _fields(cls)
        setattr(cls, _FIELDS, fields)
        compared = tuple(spec.name for spec in fields if spec.compare)
        _set(cls, "__init__", _init(cls, fields))
        _set(cls, "__repr__", _repr(tuple(spec.name for spec in fields if spec.repr)))
        _set(cls, "__eq__", _eq(compared))
        if frozen:
            if "__setattr__" in cls.__dict__ or "__delattr__" in cls.__dict__:
                raise TypeError(f"cannot overwrite attribute __setattr__ in class {cls.__name__}")
            cls.__setattr__, cls.__delattr__ = _frozen(cls, tuple(spec.name for spec in fields))
            if cls.__dict__.get("__hash__") is None:
                cls.__hash__ = lambda self: hash(tuple(getattr(self, name) for name in compared))
        elif "__hash__" not in cls.__dict__:
            cls.__hash__ = None  # compared by value: unhashable, as a dataclass
        return cls

    def _set(cls, name, method):
        if name not in cls.__dict__:
            method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)

    def _init(cls, fields):
        count = len(fields)

        def __init__(self, *args, **kwargs):
            if len(args) > count:
                raise TypeError(f"{cls.__name__}.__init__() takes {count + 1} positional arguments "
                                f"but {len(args) + 1} were given")
            put = object.__setattr__
            for index, spec in enumerate(fields):
                name, default, factory = spec.name, spec.default, spec.factory
                if index < len(args):
                    if name in kwargs:
                        raise TypeError(f"{cls.__name__}.__init__() got multiple values "
                                        f"for argument {name!r}")
                    value = args[index]
                elif name in kwargs:
                    value = kwargs.pop(name)
                elif default is not _MISSING:
                    value = default
                elif factory is not _MISSING:
                    value = factory()
                else:
                    raise TypeError(f"{cls.__name__}.__init__() missing required argument: {name!r}")
                put(self, name, value)
            if kwargs:
                raise TypeError(f"{cls.__name__}.__init__() got an unexpected keyword argument "
                                f"{next(iter(kwargs))!r}")
            post = getattr(self, "__post_init__", None)
            if post is not None:
                post()
        return __init__

    def _repr(names):
        def __repr__(self):
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
            return f"{type(self).__qualname__}({shown})"
        return __repr__

    def _eq(names):
        def __eq__(self, other):
            if other.__class__ is not self.__class__:
                return NotImplemented
            mine = tuple(getattr(self, name) for name in names)
            return mine == tuple(getattr(other, name) for name in names)
        return __eq__

    def _frozen(cls, names):
        def __setattr__(self, name, value):
            if type(self) is cls or name in names:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self, name):
            if type(self) is cls or name in names:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)
        return __setattr__, __delattr__
