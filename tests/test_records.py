"""quick_init builds the same frozen records as the dataclass's own __init__."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import InitVar, dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from outreach import cadence, compliance_store, dispatcher
from outreach.compliance import decision, facts, frequency, windows, zones
from outreach.providers.base import OutboundMessage
from outreach.records import quick_init
from outreach.rendering import context, render
from outreach.rendering.environment import TemplateKey

QUICK = [
    facts.Phone,
    facts.Email,
    facts.Debtor,
    facts.Event,
    facts.Contact,
    facts.Situation,
    frequency.PastContact,
    windows.InconvenientTime,
    decision.Reason,
    decision.Decision,
    zones.Candidates,
    cadence.AccountFacts,
    cadence.StepRecord,
    cadence.NextAction,
    context.MessageFacts,
    context.Debtor,
    render.Rendered,
    compliance_store.DebtorRecord,
    OutboundMessage,
    dispatcher._Decided,
]

# One distinct value per field type, so that a field written under another's name shows.
SAMPLES: dict[str, Any] = {
    "str": "text",
    "int": 7,
    "bool": True,
    "date": date(2026, 11, 2),
    "datetime": datetime(2026, 11, 2, 15, 30, tzinfo=UTC),
    "time": time(9, 15),
    "Decimal": Decimal("12.50"),
}


def arguments(cls: type) -> list[Any]:
    """A value for each field: a sample where the type is simple, else a unique marker."""
    values: list[Any] = []
    for index, one in enumerate(dataclasses.fields(cls)):
        kind = str(one.type).split(" | ")[0]
        values.append(SAMPLES.get(kind, f"marker-{index}"))
    return values


def built_by_dataclass(cls: type, *args: Any, **kwargs: Any) -> Any:
    record: Any = object.__new__(cls)
    original(cls)(record, *args, **kwargs)
    return record


def original(cls: type) -> Any:
    """The __init__ dataclasses wrote, kept by quick_init."""
    return getattr(vars(cls).get("__init__"), "__wrapped__", None)


@pytest.mark.parametrize("cls", QUICK, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_each_planning_record_is_built_exactly_as_the_dataclass_builds_it(cls: type) -> None:
    assert original(cls) is not None, "quick_init fell back to the dataclass's own"
    values = arguments(cls)
    names = [one.name for one in dataclasses.fields(cls)]
    quick = cls(*values)
    assert (
        vars(quick)
        == vars(built_by_dataclass(cls, *values))
        == dict(zip(names, values, strict=True))
    )
    assert cls(**dict(zip(names, values, strict=True))) == quick
    assert inspect.signature(cls) == inspect.signature(original(cls).__get__(quick))
    assert typing.get_type_hints(vars(cls)["__init__"]) == typing.get_type_hints(original(cls))
    required = [one for one in dataclasses.fields(cls) if _required(one)]
    least = cls(*values[: len(required)])  # every default and factory taken
    assert vars(least) == vars(built_by_dataclass(cls, *values[: len(required)]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(quick, names[0], values[0])


def _required(one: dataclasses.Field[Any]) -> bool:
    return one.default is dataclasses.MISSING and one.default_factory is dataclasses.MISSING


def test_a_factory_runs_for_each_record_and_a_given_value_is_kept() -> None:
    first = context.MessageFacts("R-1", "Pat", 100, "USD", date(2026, 1, 1), "en_US", "t")
    second = context.MessageFacts("R-2", "Sam", 100, "USD", date(2026, 1, 1), "en_US", "t")
    assert first.extra == {} and first.extra is not second.extra
    mine = {"plan": "gold"}
    assert (
        context.MessageFacts("R", "P", 1, "USD", date(2026, 1, 1), "en_US", "t", "", mine).extra
        is mine
    )


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((), {}),
        (("+15550100", "mobile", None, True, False, False, "extra"), {}),
        (("+15550100",), {"colour": "red"}),
        (("+15550100",), {"number": "+15550101"}),
        (("+15550100",), {"self": 1}),
    ],
)
def test_wrong_calls_fail_with_the_dataclass_messages(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with pytest.raises(TypeError) as quick:
        facts.Phone(*args, **kwargs)
    with pytest.raises(TypeError) as own:
        built_by_dataclass(facts.Phone, *args, **kwargs)
    assert str(quick.value) == str(own.value)


def test_records_compare_and_hash_as_before() -> None:
    one = facts.Phone("+15550100", "mobile")
    assert one == facts.Phone("+15550100", kind="mobile")
    assert hash(one) == hash(facts.Phone("+15550100", "mobile"))
    assert one != facts.Phone("+15550100", "landline")
    assert repr(one) == (
        "Phone(number='+15550100', kind='mobile', timezone=None, consent=False, "
        "sms_consent=False, voice_consent=False)"
    )
    assert TemplateKey("sms", "due", "friendly") == TemplateKey("sms", "due", "friendly")


def test_classes_it_cannot_treat_exactly_keep_their_own_init() -> None:
    @quick_init
    @dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    @quick_init
    @dataclass(frozen=True, slots=True)
    class Slotted:
        value: int

    @quick_init
    @dataclass(frozen=True)
    class WithInitVar:
        value: int
        scale: InitVar[int] = 1

    @quick_init
    @dataclass(frozen=True)
    class KeywordOnly:
        value: int = field(kw_only=True)

    @quick_init
    @dataclass(frozen=True)
    class NotInInit:
        value: int
        seen: int = field(default=0, init=False)

    @quick_init
    @dataclass(frozen=True)
    class WithClassVar:
        value: int
        kind: ClassVar[str] = "c"

    @quick_init
    @dataclass(frozen=True)
    class OwnInit:
        value: int

        def __init__(self, raw: str) -> None:  # dataclasses keeps it
            object.__setattr__(self, "value", int(raw))

    @quick_init
    @dataclass(frozen=True, init=False)
    class NoDataclassInit:
        value: int

    @quick_init
    @dataclass(frozen=True)
    class FieldsLikeItsNames:
        items: list[int] = field(default_factory=list)
        _quick_factory_0: int = 5

    @quick_init
    @dataclass(frozen=True)
    class FieldNamedSelf:
        self: int

    kept = (
        Checked, Slotted, WithInitVar, KeywordOnly, NotInInit, WithClassVar, OwnInit,
        NoDataclassInit, FieldsLikeItsNames, FieldNamedSelf,
    )  # fmt: skip
    for cls in kept:
        assert original(cls) is None, cls.__name__
    with pytest.raises(ValueError, match="negative"):
        Checked(-1)
    assert vars(WithClassVar(3)) == {"value": 3}
    assert vars(OwnInit("7")) == {"value": 7}
    assert vars(FieldsLikeItsNames()) == {"items": [], "_quick_factory_0": 5}
    assert vars(FieldNamedSelf(1)) == {"self": 1}


def test_it_refuses_what_is_not_a_frozen_dataclass() -> None:
    @dataclass
    class Mutable:
        value: int

    class Plain:
        pass

    for cls in (Mutable, Plain):
        with pytest.raises(TypeError, match="frozen dataclasses"):
            quick_init(cls)
