"""Typed errors. Every error the library raises on bad input is a `NAToolkitError`; the CLI prints its
message on one line and exits 2, so each message names the problem and says what to do."""

from __future__ import annotations

import difflib
import os
import shlex
from collections.abc import Iterable, Iterator
from contextlib import contextmanager


class NAToolkitError(Exception):
    """Base class of every error the toolkit raises on bad input or a broken component.

    Every one survives pickling with its message and attributes, whatever its `__init__` takes: an error
    raised in a worker process (a task's toolkit that cannot be rebuilt there) reaches the search as itself,
    not as a worker that died (pickle calls `cls(*args)`, which a subclass's own `__init__` refuses)."""

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuilt, (type(self), self.args, dict(vars(self))))


def _rebuilt(cls: type[NAToolkitError], args: tuple[object, ...], attrs: dict[str, object]) -> NAToolkitError:
    """`NAToolkitError.__reduce__`'s inverse: the error made without its `__init__`, as it was."""
    err = cls.__new__(cls)
    err.args = args
    vars(err).update(attrs)
    return err


class ArchitectureError(NAToolkitError):
    """An architecture is malformed: bad JSON, unknown layer type, cycle, dangling input, bad attribute."""

    def __init__(self, message: str, node: str | None = None):
        self.node = node
        super().__init__(f"node {node!r}: {message}" if node is not None else message)


class ShapeError(ArchitectureError):
    """Shapes do not agree (e.g. an add of two tensors of different shape)."""


def describe(exc: BaseException) -> str:
    """`Type: message` on one line: how an exception raised by a plugin's code is quoted in a toolkit
    message (the CLI prints one line per error; library messages often span several)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the CLI's process is, so that it ends as Ctrl-C ends it: whatever cleans up after
    a KeyboardInterrupt (a search marking its run interrupted, its pool's shutdown) does after SIGTERM too."""

    #: the line's word and the exit status (a Ctrl-C: "interrupted", 130); 143 = 128 + SIGTERM
    said_as = ("terminated", 143)


def interrupt_within(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM: `Terminated`) an exception stands for: a KeyboardInterrupt among its causes, or
    the one it was raised while handling. A C extension being imported when the user pressed Ctrl-C turns it
    into an error of its own (pybind11's `ImportError: initialization failed`, raised from the interrupt,
    in scipy and torch among others): that is the user stopping the command, not a plugin's failure."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ if e.__cause__ is not None else (None if e.__suppress_context__ else e.__context__)
    return None


def raise_interrupt(exc: BaseException) -> None:
    """Raise the KeyboardInterrupt `exc` stands for (`interrupt_within`), if any: where an exception of a
    plugin's code is caught to be reported as its failure, a Ctrl-C still stops the command."""
    interrupt = interrupt_within(exc)
    if interrupt is not None and interrupt is not exc:
        raise type(interrupt)(*interrupt.args) from exc  # its kind says how the CLI ends (130, or 143 for SIGTERM)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` Did you mean 'x', 'y'?` for the names of `known` close to `name`, or "" when none is."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(map(repr, close))}?" if close else ""


def resume_hint(folder: str | os.PathLike[str], *, placeholder: bool = False) -> str:
    """How to continue the run in `folder`, in both forms: "`na-toolkit search --resume F` (Python:
    `run_search(resume='F')`)", the folder shell-quoted for the command and repr'd for the call, each
    pasted as it is. `placeholder=True`: `folder` is a name the reader replaces (RUN, COPY), written bare in
    both forms."""
    cli, call = (str(folder), str(folder)) if placeholder else (shlex.quote(str(folder)), repr(str(folder)))
    return f"`na-toolkit search --resume {cli}` (Python: `run_search(resume={call})`)"


def with_article(noun: str) -> str:
    """`a move`, `an evaluator` (by the first letter, which is right for every component kind)."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def counted(n: int, noun: str) -> str:
    """`1 move`, `3 moves`, `2 strategies` (the plural of every component kind)."""
    if n == 1:
        return f"1 {noun}"
    plural = f"{noun[:-1]}ies" if noun.endswith("y") and noun[-2:-1] not in tuple("aeiou") else f"{noun}s"
    return f"{n} {plural}"


class UnknownComponentError(NAToolkitError, KeyError):
    """A name that no registry holds; lists the close matches and what is registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str], more: str = ""):
        """`more`: a sentence appended to the message (what else the name could have meant)."""
        known = sorted(known)
        hint = did_you_mean(name, known)
        self.kind, self.name, self.known = kind, name, known
        msg = f"unknown {kind} {name!r}.{hint} Known: {', '.join(known) or '(none registered)'}"
        super().__init__(f"{msg}. {more}" if more else msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class PluginError(NAToolkitError):
    """A plugin failed to load or to register (import error, raising hook, duplicate name, wrong type)."""

    def __init__(self, plugin: str, message: str):
        self.plugin = plugin
        super().__init__(f"plugin {plugin}: {message}")


class DuplicateComponentError(PluginError):
    """Two plugins registered a component under the same name."""


class OnnxImportError(NAToolkitError):
    """An ONNX file cannot be read or holds an op the toolkit does not support."""


class TorchImportError(NAToolkitError):
    """A torch module cannot be imported (`na_toolkit.ir.from_torch`): torch.export fails on it, or it uses an
    op the toolkit does not support (the message names the op and where the module's code calls it)."""


class NAToolkitWarning(UserWarning):
    """Base class of the toolkit's warnings: something the user should know that does not stop the call."""


class TorchImportWarning(NAToolkitWarning):
    """`from_torch` imported the module, but not all of it: submodules whose parameters forward never uses on
    the example input (an unused head) are not in the imported architecture."""


class DeviceWarning(NAToolkitWarning, RuntimeWarning):
    """A time model or the hardware registry goes on with less than it was asked for: measured on the CPU
    instead of a missing GPU provider, a profile too small to calibrate, a hardware-model folder ignored."""


class HardwareModelWarning(NAToolkitWarning):
    """A hardware model file reads as valid but one of its values is suspect: a measured ceiling well above
    the datasheet peak it should stay under (a unit or device mistake); the model is used as written."""


class ShadowedPathWarning(NAToolkitWarning):
    """A bare name that is a registered component (a seed, a dataset, a hardware model) was read as that
    component though a file or folder of the same name exists: the warning names it and says how to use it
    instead (write it as a path, `./NAME`)."""


class TimeModelCacheWarning(NAToolkitWarning):
    """A time-estimate cache file can no longer be read or written (its `-shm` made read-only under a
    search, a disk error): the time model goes on with the estimates in memory only."""


class MoveError(NAToolkitError):
    """A move cannot be applied with these parameters (the mask would have removed them)."""


class ProfileError(NAToolkitError):
    """A device profile is corrupt, of the wrong schema version, or of another device."""


class HardwareError(NAToolkitError):
    """An unknown device or hardware model, or a hardware model file with bad values."""


class TimeModelError(NAToolkitError):
    """A time model cannot estimate this architecture here (runtime missing, provider unavailable...)."""


class ComponentError(NAToolkitError):
    """A component (a plugin's or a built-in) broke its contract while the toolkit used it: it raised an
    error of its own (not a NAToolkitError, which already says what is wrong), or returned what it may not (an
    estimate that is no TimeEstimate, a negative latency, an accuracy outside [0, 1]). The message names the
    component and its plugin; the original exception is its `__cause__` (`na-toolkit -vv` prints it)."""


def wrong_answer(what: str, plugin: str, gave: str, problems: list[str]) -> ComponentError:
    """The ComponentError of a component whose answer breaks its contract: `what` (e.g. "time model 'x'") of
    `plugin` `gave` (e.g. "network H an answer") what it may not, and each of the `problems`."""
    return ComponentError(f"{what} of plugin {plugin} gave {gave} it may not: {'; '.join(problems)}")


@contextmanager
def blame(what: str, plugin: str, doing: str) -> Iterator[None]:
    """Run a component's code: an exception of its own becomes a ComponentError naming `what` (e.g. "time
    model 'x'"), its plugin and what it was `doing`; a NAToolkitError passes as it is."""
    try:
        yield
    except NAToolkitError:
        raise
    except Exception as exc:
        raise_interrupt(exc)
        raise ComponentError(f"{what} of plugin {plugin} failed {doing}: {describe(exc)}") from exc


class NotFittedError(NAToolkitError, ValueError):
    """A predictor or learned model was used before `fit`."""


class DataError(NAToolkitError, ValueError):
    """A dataset or table is unusable: missing columns, malformed rows, one class, mismatched shapes."""


class TrainingDivergedError(NAToolkitError):
    """An evaluator's training went to a non-finite loss before any epoch ended with finite weights: no result
    (a search records the evaluation as failed, with this message). What the training cost is kept:
    `epochs` trained, `train_time_s` (wall) and `train_cpu_time_s` (a training-time benchmark times it)."""

    def __init__(self, message: str, epochs: int = 0, train_time_s: float = 0.0, train_cpu_time_s: float = 0.0):
        super().__init__(message)
        self.epochs, self.train_time_s, self.train_cpu_time_s = epochs, train_time_s, train_cpu_time_s


class ConfigError(NAToolkitError, ValueError):
    """A search configuration names an unknown key, misses a field, or holds a bad value."""


class StoreError(NAToolkitError):
    """The run store is missing, corrupt, or belongs to another run."""


class UnknownNetworkError(NAToolkitError, KeyError):
    """A hash that names no network a search evaluated (a KeyError too, as `SearchResult.get` raised before)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


#: the former name of `MoveError`
OperationError = MoveError
