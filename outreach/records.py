"""A quicker ``__init__`` for the frozen dataclasses the planner makes for every account.

A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, since
its own ``__setattr__`` refuses: about 100 ns a field, a microsecond for an eight-field
record, and planning one account makes a dozen such records (its debtor, phones, the
situation, the decision, the message facts...). ``quick_init`` gives the class an
``__init__`` with the same parameters and defaults that writes the instance's ``__dict__``
directly, which is all ``object.__setattr__`` does for a plain field; the result is the
same object (a test holds the two equal for every class that uses it). Instances stay
frozen: only ``__init__`` changes.

A class it cannot treat exactly keeps its ``__init__``: one with its own ``__init__`` or
none from dataclasses, slots, a ``__post_init__``, an ``InitVar`` or a ``ClassVar``, a
keyword-only or non-init field, a field named ``self`` or like the generated names, or a
descriptor where a field is stored.
"""

from __future__ import annotations

import dataclasses
import inspect
import keyword
from typing import Any, TypeVar

T = TypeVar("T")

# Names in the generated function besides the fields; a class with a field so named keeps
# its own __init__.
_PREFIX = "_quick_"
_STORE, _FACTORY = f"{_PREFIX}store", f"{_PREFIX}FACTORY"


def quick_init(cls: type[T]) -> type[T]:
    """Apply below ``@dataclass(frozen=True)``: ``@quick_init @dataclass(frozen=True)``."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"quick_init is for frozen dataclasses, not {cls.__name__}")
    if not _treatable(cls):
        return cls
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {_FACTORY: _Factory()}
    parameters: list[str] = []
    body: list[str] = []
    for index, field in enumerate(fields):
        name = field.name
        value = name
        if field.default is not dataclasses.MISSING:
            namespace[f"{_PREFIX}default_{index}"] = field.default
            parameters.append(f"{name}={_PREFIX}default_{index}")
        elif field.default_factory is not dataclasses.MISSING:
            namespace[f"{_PREFIX}factory_{index}"] = field.default_factory
            parameters.append(f"{name}={_FACTORY}")
            value = f"{_PREFIX}factory_{index}() if {name} is {_FACTORY} else {name}"
        else:
            parameters.append(name)
        body.append(f"    {_STORE}[{name!r}] = {value}")
    source = (
        f"def __init__({', '.join(['self', *parameters])}):\n"
        f"    {_STORE} = self.__dict__\n" + "\n".join(body or ["    pass"]) + "\n"
    )
    exec(source, namespace)  # noqa: S102 - the source holds only field names and indices
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    init.__wrapped__ = cls.__init__  # the dataclass's own, for tests
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _treatable(cls: type) -> bool:
    if not cls.__dataclass_params__.init or not _generated(vars(cls).get("__init__")):  # type: ignore[attr-defined]
        return False
    if "__slots__" in cls.__dict__ or hasattr(cls, "__post_init__"):
        return False
    declared = cls.__dataclass_fields__  # type: ignore[attr-defined]
    fields = dataclasses.fields(cls)
    if len(fields) != len(declared):  # an InitVar or a ClassVar among them
        return False
    for field in fields:
        if not field.init or field.kw_only or field.name == "self":
            return False
        if field.name.startswith(_PREFIX):
            return False
        if keyword.iskeyword(field.name) or not field.name.isidentifier():
            return False
        # object.__setattr__ would call a data descriptor; a __dict__ write would not.
        attribute = inspect.getattr_static(cls, field.name, None)
        if hasattr(type(attribute), "__set__"):
            return False
    return True


def _generated(init: Any) -> bool:
    """Whether ``init`` is the ``__init__`` dataclasses wrote (compiled from a string), not
    one the class defines itself, which dataclasses keeps."""
    code = getattr(init, "__code__", None)
    return code is not None and code.co_filename.startswith("<")


class _Factory:
    """The default of a field made by a factory: the factory runs for each instance."""

    def __repr__(self) -> str:
        return "<factory>"
