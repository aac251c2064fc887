"""One Compute Engine call, bounded: in time, in pages, and in what it may answer.

google-cloud-compute's own timeout is per HTTP read, so an endpoint that trickles a byte
now and then holds a call for ever, and a listing whose every page names a next page
never ends. ``bounded`` runs the call (and, for a listing, every page of it) on a worker
thread and gives up at ``WALL_S``; it stops a listing at ``MAX_PAGES`` pages or a page
token that comes back again. An answer the client cannot parse (not JSON, fields of the
wrong type) becomes an ``UnreadableAnswerError`` (an API error), which composer answers
like any other, never with a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import Any

WALL_S = 120.0  # one call, retries and every page included
MAX_PAGES = 2000  # Compute Engine pages hold up to 500 items
POLL_S = 0.2  # how often the waiting thread looks up (signals are handled meanwhile)


class Listed(list[Any]):
    """Every item of a listing, pages joined (``(scope, scoped list)`` pairs for an
    aggregated one); ``unreachables``: the scopes no page could list."""

    unreachables: list[str]

    def __init__(self, items: list[Any], unreachables: list[str]) -> None:
        super().__init__(items)
        self.unreachables = unreachables


@cache
def _unreadable_class() -> type[BaseException]:
    from google.api_core.exceptions import GoogleAPIError

    class UnreadableAnswerError(GoogleAPIError):
        """Compute Engine (or what stands at its endpoint) answered nonsense."""

    return UnreadableAnswerError


def unreadable(message: str) -> BaseException:
    """An API error (``GoogleAPIError``) saying an answer could not be read."""
    return _unreadable_class()(message)


def _timed_out(what: str) -> BaseException:
    import requests

    return requests.exceptions.ReadTimeout(
        f"{what}: no complete answer within {WALL_S:.0f}s")


def settle(result: Any, what: str) -> Any:
    """``result`` itself, or for a listing (a pager) all its pages' items as ``Listed``."""
    if not hasattr(type(result), "pages"):
        return result
    items: list[Any] = []
    unreachables: list[str] = []
    seen: set[str] = set()
    for count, page in enumerate(result.pages, start=1):
        if count > MAX_PAGES:
            raise unreadable(f"{what}: more than {MAX_PAGES} pages; stopped")
        field = page.items
        items.extend(field.items() if hasattr(field, "keys") else field)
        unreachables.extend(getattr(page, "unreachables", None) or ())
        token = page.next_page_token
        if token and token in seen:
            raise unreadable(f"{what}: page token {token[:40]!r} came back again; stopped")
        seen.add(token)
    return Listed(items, unreachables)


def bounded(call: Callable[[], Any], what: str) -> Any:
    """Run ``call`` and ``settle`` its answer on a worker thread, at most ``WALL_S``."""
    from google.protobuf.json_format import ParseError

    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = settle(call(), what)
        except (ParseError, ValueError, TypeError, KeyError, AttributeError) as exc:
            box["error"] = unreadable(f"{what}: an answer composer cannot read: "
                                      f"{type(exc).__name__}: {exc}")
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name=f"gce {what}", daemon=True).start()
    waited = 0.0
    while not done.wait(POLL_S):
        waited += POLL_S
        if waited >= WALL_S:
            raise _timed_out(what)
    if "error" in box:
        raise box["error"]
    return box["value"]
