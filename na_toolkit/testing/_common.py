"""What the checks share: the failure message, the toolkit a check runs against, looking a component up."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ..errors import NAToolkitWarning

if TYPE_CHECKING:  # pragma: no cover
    from ..registry import Registry
    from ..toolkit import Toolkit

T = TypeVar("T")

#: the option name no component has (the checks that unknown options are refused)
UNKNOWN_OPTION = "no_such_option_"


class ConformanceError(AssertionError):
    """A component breaks its protocol's contract. An AssertionError, so pytest shows it as a failed
    assertion; the message names the component and what broke, in one line."""


class ConformanceWarning(NAToolkitWarning):
    """Part of a check could not run (the message says why and what would let it run); the rest passed."""


def fail(component: str, what: str) -> NoReturn:
    """Raise `ConformanceError("COMPONENT: WHAT")`."""
    raise ConformanceError(f"{component}: {' '.join(what.split())}")


def expect(condition: Any, component: str, what: str) -> None:
    """`fail(component, what)` unless `condition` holds (an `assert` that survives `python -O`)."""
    if not condition:
        fail(component, what)


def listed(value: Any, what: str) -> Any:
    """`value`, a sequence of names or items; a single string is a TypeError naming `what` (iterated, it would
    be the names 's', 'i', 'm', ... : "unknown seed network 's'")."""
    if isinstance(value, str):
        raise TypeError(f"{what}: a list of names, got the string {value!r}: [{value!r}]")
    return value


def toolkit_or_default(toolkit: Toolkit | None) -> Toolkit:
    """The toolkit a check runs against: the one given (a plugin's tests build theirs with
    `load_toolkit(entry_points=False, extra_plugins=(my_plugin,))`), else the built-ins and the installed
    plugins. The testing kit is an entry point of its own (a test suite), so it may build one."""
    if toolkit is not None:
        return toolkit
    from ..plugins import load_toolkit

    return load_toolkit(strict=True)


def resolve(registry: Registry[T], component: T | str, kind: str) -> tuple[str, T]:
    """(name, component) for a component given by its registered name or as the object itself."""
    if isinstance(component, str):
        expect(component in registry, f"{kind} {component!r}", f"is not registered; registered: {registry.names()}")
        return component, registry.get(component)
    name = str(getattr(component, "name", "") or "")
    return name, component


def expect_unknown_option_refused(cls: type, options: dict[str, Any], component: str) -> None:
    """Fail unless the options check a search config gets (`validation.check_options`) refuses an unknown
    option given to `cls` with an error naming it."""
    from ..errors import NAToolkitError
    from ..validation import check_options

    try:  # the options the check was given first, alone: a refusal of them is the caller's to fix
        check_options(cls, options, f"{component} options")
    except NAToolkitError as e:
        fail(component, f"refuses the options the check was given ({e}); give options it takes")
    try:
        check_options(cls, {**options, UNKNOWN_OPTION: 1}, f"{component} options")
    except NAToolkitError as e:
        expect(UNKNOWN_OPTION in str(e), component, f"refusing an unknown option, the error does not name it: {e}")
    else:
        fail(
            component,
            f"accepts the unknown option {UNKNOWN_OPTION!r} (declare an Options model and check the options)",
        )


def resolve_options_class(
    registry: Registry[Any], component: Any, kind: str, base: type, options: Mapping[str, Any] | None
) -> tuple[str, Any, str, dict[str, Any]]:
    """(name, class, label, options) of a component class that takes options (an evaluator, an executor),
    given by its registered name or as the class: a subclass of `base` named as registered, with a
    description, refusing an unknown option with an error naming it."""
    name, cls = resolve(registry, component, kind)
    label = f"{kind} {name!r}"
    if not (isinstance(cls, type) and issubclass(cls, base)):
        from ..errors import with_article

        fail(label, f"{cls!r} is not {with_article(base.__name__)} subclass")
    expect(cls.name == name, label, f"registered as {name!r} but its class attribute `name` is {cls.name!r}")
    expect(cls.description, label, f"{cls.__name__} has no description: set the class attribute `description`")
    opts = dict(options or {})
    expect_unknown_option_refused(cls, opts, label)
    return name, cls, label, opts
