"""Connecting a tab's named handlers to its components: values travel by name, never by position.

A handler is a module-level function `handler(ctx, *, name=value, ...)`. A tab's wiring names each
input once, next to the component it comes from:

    connect(ui.start.click, ctx, start_separation, {"files": ui.uploads, "model": ui.model}, outputs)

`connect` checks at build time that the names are exactly the handler's parameters, then lets
Gradio call the handler with the app's context and those values as keywords. An input may also be
a list of components (the handler gets the list of their values) or a dict of them (a dict of
values), for groups such as the Label editor's rows or its view settings.

`status` names the output that shows a person's mistake (a `UserError`): the handler's refusal goes
there and into a warning toast, every other output stays as it was (`ui.errors.in_status`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ui.context import AppContext
from ui.errors import in_status

# One named input: a component, a list of components, or a dict of components.
InputSpec = Any
Inputs = Mapping[str, InputSpec]


def flatten_inputs(inputs: Inputs) -> tuple[list[Any], Callable[[Sequence[Any]], dict[str, Any]]]:
    """The components in the order Gradio passes their values, and the function that names them."""
    components: list[Any] = []
    shapes: list[tuple[str, None | int | list[str]]] = []
    for name, spec in inputs.items():
        if isinstance(spec, Mapping):
            components.extend(spec.values())
            shapes.append((name, list(spec)))
        elif isinstance(spec, list | tuple):
            components.extend(spec)
            shapes.append((name, len(spec)))
        else:
            components.append(spec)
            shapes.append((name, None))

    def named(values: Sequence[Any]) -> dict[str, Any]:
        if len(values) != len(components):
            raise TypeError(f"expected {len(components)} input values, got {len(values)}")
        it = iter(values)
        out: dict[str, Any] = {}
        for name, shape in shapes:
            if shape is None:
                out[name] = next(it)
            elif isinstance(shape, int):
                out[name] = [next(it) for _ in range(shape)]
            else:
                out[name] = {key: next(it) for key in shape}
        return out

    return components, named


def bind(
    ctx: AppContext, handler: Callable[..., Any], inputs: Inputs
) -> tuple[Callable[..., Any], list[Any]]:
    """A Gradio function calling `handler(ctx, **named inputs)`, and its input components.

    Raises TypeError at once (while the app is built) when the names do not fit the handler.
    """
    inspect.signature(handler).bind(ctx, **dict.fromkeys(inputs))
    components, named = flatten_inputs(inputs)
    if inspect.isgeneratorfunction(handler):

        def call_generator(*values: Any) -> Iterator[Any]:
            yield from handler(ctx, **named(values))

        call: Callable[..., Any] = call_generator
    else:

        def call(*values: Any) -> Any:
            return handler(ctx, **named(values))

    call.__name__ = call.__qualname__ = handler.__name__  # Gradio names the event (and its API) after it
    call.__doc__ = handler.__doc__
    return call, components


def connect(
    event: Callable[..., Any],
    ctx: AppContext,
    handler: Callable[..., Any],
    inputs: Inputs | None = None,
    outputs: Any = None,
    status: Any = None,
    **options: Any,
) -> Any:
    """`event(fn, inputs, outputs, **options)` with `fn` calling `handler` by name (see the module docstring);
    a refusal shows in `status` (one of `outputs`; None: in a toast only)."""
    if status is not None and not any(status is o for o in _as_list(outputs)):
        raise TypeError(f"the status component of {handler.__name__} is not one of its outputs")
    fn, components = bind(ctx, handler, inputs or {})
    return event(in_status(fn, status, ctx.i18n), inputs=components, outputs=outputs, **options)


def _as_list(outputs: Any) -> list[Any]:
    if outputs is None:
        return []
    return list(outputs) if isinstance(outputs, list | tuple | set) else [outputs]
