"""What an exam's events turn into: ZeroMQ messages (built by ``wire.messages`` from the
session's fields, the one source of every message field) and the heartbeat registration."""

from __future__ import annotations

import logging
from typing import Any

from ceustream.engine.wire import messages

from .session import Event, ExamSession

log = logging.getLogger(__name__)


def score_message(session: ExamSession, score: Any) -> dict[str, Any]:
    return messages.score(**session.score_fields(score))


def status_message(session: ExamSession) -> dict[str, Any]:
    return messages.status(**session.status_fields())


class PublishEvents:
    """Subscribes a ``wire.publisher.Publisher`` to a session's events."""

    def __init__(self, publisher: Any):
        self.publisher = publisher

    def __call__(self, event: Event) -> None:
        s = event.session
        if event.kind == "started":
            self.publisher.watch(s.exam, lambda: status_message(s))
        elif event.kind == "score":
            self.publisher.publish("score", score_message(s, event.data))
        elif event.kind == "status":
            self.publisher.publish("status", status_message(s))
        elif event.kind == "finished":
            self.publisher.unwatch(s.exam)


def attach(session: ExamSession, publisher: Any = None, journal: Any = None,
           on_score: Any = None) -> ExamSession:
    """The usual outputs of an exam: the journal first (a slot is on disk before it is
    announced), then the publisher, then a score callback (progress lines, benchmarks)."""
    if journal is not None:
        session.subscribe(journal.subscriber)
    if publisher is not None:
        session.subscribe(PublishEvents(publisher))
    if on_score is not None:
        session.subscribe(lambda ev: on_score(ev.data, ev.session) if ev.kind == "score" else None)
    return session
