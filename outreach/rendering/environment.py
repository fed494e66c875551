"""Sandboxed Jinja2 environments over a set of template sources.

Templates come from the operator's files (lint, preview, sync) or from the published
versions in the database (the daemon); either way they are a mapping from a path such as
``sms/overdue.firm.j2`` to its source. Rendering uses Jinja2's immutable sandbox with
StrictUndefined: a template cannot reach Python internals, change its data, or print a
misspelt variable as an empty string.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from time import monotonic
from typing import Any

from babel import Locale, UnknownLocaleError
from jinja2 import FunctionLoader, StrictUndefined, nodes
from jinja2.environment import Template, TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

from outreach.config_files import read_config_text
from outreach.errors import TemplateError
from outreach.rendering.context import Company, Debtor, LocalTexts
from outreach.rendering.limits import (
    LEFT_OUT_GLOBALS,
    bound_loops,
    bounded_concat,
    bounded_filters,
    check_binop,
    check_call,
    checked,
    extend_deadline,
    plain_arguments,
    spend,
)

CHANNELS = ("sms", "email", "voice")
PARTIALS_DIR = "_partials"
TEMPLATE_SUFFIX = ".j2"


@dataclass(frozen=True, order=True)
class TemplateKey:
    """Which template: ``{channel}/{name}.{tone}[.{language}].j2``."""

    channel: str
    name: str
    tone: str
    language: str = ""  # "" is the default variant

    @property
    def path(self) -> str:
        suffix = f".{self.language}" if self.language else ""
        return f"{self.channel}/{self.name}.{self.tone}{suffix}{TEMPLATE_SUFFIX}"

    @classmethod
    def from_path(cls, path: str) -> TemplateKey:
        channel, _, filename = path.partition("/")
        if channel not in CHANNELS or not filename.endswith(TEMPLATE_SUFFIX):
            raise TemplateError(
                f"{path}: templates live in {{channel}}/{{name}}.{{tone}}.j2 with channel one "
                f"of {', '.join(CHANNELS)}"
            )
        parts = filename[: -len(TEMPLATE_SUFFIX)].split(".")
        if "" in parts:  # ``overdue.firm..j2`` would read as the default variant's path
            raise TemplateError(
                f"{path}: an empty name, tone or language; name the file {{name}}.{{tone}}.j2 "
                "or {name}.{tone}.{language}.j2"
            )
        if len(parts) == 2:
            return cls(channel, parts[0], parts[1])
        if len(parts) == 3:
            return cls(channel, parts[0], parts[1], parts[2])
        raise TemplateError(
            f"{path}: name the file {{name}}.{{tone}}.j2 or {{name}}.{{tone}}.{{language}}.j2"
        )


def unused_variant(key: TemplateKey) -> str | None:
    """Why a language variant's file would never be used, or None when it is a default
    variant or would be.

    An account gets the variant named by its locale's language (``es`` for ``es_MX`` or
    ``es_US``), as Babel writes it once the import has read the locale: lowercase, without
    a territory. Any other name is never picked, or names a language Babel cannot format
    amounts and dates in."""
    language = key.language
    if not language:
        return None
    alone = language.replace("-", "_").split("_")[0]
    if alone != language:
        return (
            f"{key.path}: a variant is named by its language alone ('{alone.lower()}'), "
            f"which every territory's accounts in it get: '{language}' would never be used"
        )
    if language != language.lower():
        return (
            f"{key.path}: languages are written in lowercase ('{language.lower()}'): "
            f"'{language}' would never be used"
        )
    try:
        known = str(Locale.parse(language))
    except (ValueError, UnknownLocaleError):
        return (
            f"{key.path}: '{language}' is not a language Babel knows (a language code such as "
            "es, fr, de or pt): amounts and dates could not be written in it"
        )
    if known != language:  # an old code such as 'iw', which Babel reads as 'he_IL'
        return (
            f"{key.path}: accounts in '{language}' have the locale {known}: name the "
            f"variant '{known.split('_')[0]}'; '{language}' would never be used"
        )
    return None


def read_template_files(templates_dir: Path) -> dict[str, str]:
    """Every template and partial under ``templates_dir``, by path relative to it."""
    if templates_dir.is_file():
        raise TemplateError(f"templates folder {templates_dir} is a file, not a folder")
    if not templates_dir.is_dir():
        raise TemplateError(f"templates folder {templates_dir} does not exist")
    sources: dict[str, str] = {}
    for path in sorted(templates_dir.rglob(f"*{TEMPLATE_SUFFIX}")):
        relative = path.relative_to(templates_dir).as_posix()
        sources[relative] = read_config_text(path)
    return sources


# The context's own value types and imported partials (``email.button``): the sandbox's
# verdict on one of their attributes depends only on the type and the name, so it is
# worked out once rather than on every message.
_VALUE_TYPES = frozenset({Company, Debtor, LocalTexts, str, TemplateModule})


@cache
def record_fields(kind: type) -> frozenset[str] | None:
    """The data fields of a record type (a pydantic model, a dataclass), or None for any
    other type.

    A template reads a record's fields and nothing else: a pydantic model's public methods
    (``model_rebuild``, ``model_fields``, ``copy``...) reach its class, which every record
    of the process shares, and the immutable sandbox only refuses private names and the
    methods that change built-in containers."""
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return frozenset(kind.model_fields)
    if dataclasses.is_dataclass(kind):
        return frozenset(field.name for field in dataclasses.fields(kind))
    return None


# The context's own frozen records (``company``, its ``texts``, ``debtor``): looked up first,
# as a template reads a dozen of their fields a message.
_RECORD_FIELDS: dict[type, frozenset[str]] = {
    kind: fields
    for kind in (Company, LocalTexts, Debtor)
    if (fields := record_fields(kind)) is not None
}


class _Imports(threading.local):
    made: list[Context] | None = None  # collecting while ``imports_released`` runs


_imports = _Imports()


@contextmanager
def imports_released() -> Iterator[None]:
    """Render inside: each partial imported meanwhile (the email frame) is let go when the
    render ends.

    Such an import is a module whose macros close over its context, which holds the
    macros: a reference cycle, about twenty objects a message that only Python's cyclic
    collector would free, a few milliseconds per thousand emails. Emptying the context's
    variables once the output is made breaks the cycle, and reference counting frees the
    rest at once."""
    outer = _imports.made
    made: list[Context] = []
    _imports.made = made
    try:
        yield
    finally:
        _imports.made = outer
        for context in made:
            context.vars.clear()


class MessageTemplate(Template):
    def make_module(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> TemplateModule:
        context = self.new_context(vars, shared, locals)
        # Every module is made for one render alone (``_get_default_module``): let go of
        # it when the render ends.
        if _imports.made is not None:
            _imports.made.append(context)
        return TemplateModule(self, context)

    def _get_default_module(self, ctx: Context | None = None) -> TemplateModule:
        """A plain import's module (and an include "without context"'s), made afresh each
        time, as an import "with context" is.

        Jinja keeps this module on the template for every later render: a ``namespace()``,
        ``cycler()`` or ``joiner()`` its top level made would carry what one debtor's render
        wrote into the next debtor's message, since the daemon keeps its templates between
        ticks. Partials shipped with outreach are imported with context, so this costs them
        nothing."""
        if ctx is not None:
            # The importing render's own globals, as Jinja passes them (none from outreach).
            keys = ctx.globals_keys - self.globals.keys()
            if keys:
                return self.make_module({k: ctx.parent[k] for k in keys})
        return self.make_module()


class MessageEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, remembering its attribute verdicts for value types, and
    keeping each render within its bounds (``outreach.rendering.limits``)."""

    template_class = MessageTemplate
    # Operators that can make a value of any size from small ones.
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(bounded_concat)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._verdicts: dict[tuple[type, str], bool] = {}
        self.filters = bounded_filters(self.filters)
        for name in LEFT_OUT_GLOBALS:
            self.globals.pop(name, None)

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        return super()._generate(bound_loops(source), name, filename, defer_init)

    def _load_template(self, name: str, globals: MutableMapping[str, Any] | None) -> Template:
        started = monotonic()
        try:
            return super()._load_template(name, globals)
        finally:
            extend_deadline(monotonic() - started)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if type(argument) is str and _fields_of(type(obj)) is not None:
            return self.getattr(obj, argument)  # ``company['name']``: a field, or refused
        # A slice is a copy: as large as what it is taken from.
        return checked(super().getitem(obj, argument))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        spend()
        check_binop(operator, left, right)
        return checked(super().call_binop(context, operator, left, right))

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        # A plain dict rather than Jinja's ChainMap over the environment's globals: every
        # context (each render, include and import) lists the globals' keys, and a ChainMap
        # rebuilds them each time. This environment's globals never change once made.
        return {**self.globals, **(d or {})}

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        fields = _fields_of(kind)
        if fields is None:
            return super().getattr(obj, attribute)
        if attribute in fields:
            return getattr(obj, attribute)
        if isinstance(attribute, str) and hasattr(kind, attribute):  # the class's, not data
            return self.unsafe_undefined(obj, attribute)
        return self.undefined(obj=obj, name=attribute)  # misspelt: what is undefined says

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        fields = _fields_of(type(obj))
        if fields is None or attribute.startswith("_"):  # internals: as for any object
            return super().unsafe_undefined(obj, attribute)
        offered = ", ".join(sorted(fields))
        return self.undefined(
            f"{type(obj).__name__}.{attribute} is not offered to templates: only its "
            f"fields are ({offered})",
            name=attribute,
            obj=obj,
            exc=SecurityError,
        )

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        spend()
        # The arguments as passed, ``*`` and ``**`` ones included, are values made here.
        if args and not plain_arguments(args):
            checked(args)
        if kwargs:
            checked(kwargs)
        if type(__obj) is not Macro:
            args = check_call(__obj, args, kwargs)
            return checked(super().call(__context, __obj, *args, **kwargs))
        # A template's own macro (a partial's layout, its caller block) is always safe to
        # call: what the sandbox and ``Context.call`` would do comes down to dropping the
        # private arguments and passing the evaluation context (a macro takes it, to mark
        # its output safe as the caller's ``{% autoescape %}`` setting says).
        kwargs.pop("_block_vars", None)
        kwargs.pop("_loop_vars", None)
        try:
            return checked(__obj(__context.eval_ctx, *args, **kwargs))
        except StopIteration:
            return __context.environment.undefined(
                "value was undefined because a callable raised a StopIteration exception"
            )

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        kind = type(obj)
        fields = _fields_of(kind)
        if fields is not None:  # a record: its fields only (the ``attr`` filter, a format)
            return attr in fields and super().is_safe_attribute(obj, attr, value)
        if kind not in _VALUE_TYPES:
            return super().is_safe_attribute(obj, attr, value)
        verdict = self._verdicts.get((kind, attr))
        if verdict is None:
            verdict = self._verdicts[(kind, attr)] = super().is_safe_attribute(obj, attr, value)
        return verdict


def _fields_of(kind: type) -> frozenset[str] | None:
    fields = _RECORD_FIELDS.get(kind)
    return fields if fields is not None else record_fields(kind)


def make_environments(
    lookup: Callable[[str], str | None], *, fixed: bool = False
) -> tuple[ImmutableSandboxedEnvironment, ImmutableSandboxedEnvironment]:
    """A plain-text environment and an HTML one (autoescaping) over the same sources.

    ``fixed`` sources never change, so a compiled template is not checked against its
    source again on every use (each include and import included)."""

    def load(name: str) -> tuple[str, str, Callable[[], bool]] | None:
        source = lookup(name)
        if source is None:
            return None
        return source, name, lambda: lookup(name) == source

    common = {
        "loader": FunctionLoader(load),
        "undefined": StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": False,
        "auto_reload": not fixed,
        "cache_size": -1,  # a set of sources is small; keep every compiled template
    }
    text = MessageEnvironment(autoescape=False, **common)
    html = MessageEnvironment(autoescape=True, **common)
    return text, html
