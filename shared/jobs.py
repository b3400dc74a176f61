"""Job specs: the messages one process sends to an actor of another, declared once.

A :class:`JobSpec` names the actor, its queue, the model of its argument and how the
message is built. The sender builds its messages with :meth:`JobSpec.message` (never a
``dramatiq.Message`` written by hand), and the receiving service declares its actor with
:attr:`JobSpec.name` on :attr:`JobSpec.queue`, so the two sides cannot drift apart. The
specs themselves live beside the payload they carry (the trigger events' in
:mod:`shared.events`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import dramatiq
from pydantic import BaseModel

ArgsT = TypeVar("ArgsT", bound=BaseModel)


@dataclass(frozen=True)
class JobSpec(Generic[ArgsT]):
    """One actor another process sends to."""

    #: The Dramatiq actor name.
    name: str
    #: The queue the actor is declared on (a name of :data:`shared.queues.CATALOG`).
    queue: str
    #: The model of the message's argument.
    args: type[ArgsT]
    #: The message's ``(args, options, message_id)`` for one argument value.
    build: Callable[[ArgsT], tuple[tuple[Any, ...], dict[str, Any], str]]

    def message(self, value: ArgsT) -> dramatiq.Message:
        """The message that carries ``value`` to the actor."""
        args, options, message_id = self.build(value)
        return dramatiq.Message(
            queue_name=self.queue,
            actor_name=self.name,
            args=args,
            kwargs={},
            options=options,
            message_id=message_id,
        )
