"""The demo shop generator: a catalog and a year of history, as Segment messages per
source (web, app, pos, crm) in time order. Pure and seeded: the same seed, size and `now`
give the same shop, message ids included.

Memory stays proportional to the people active at a time, not to the history: people
are created at their first activity, their planned activities wait in a heap ordered by
time, and rendered messages are held only until no activity still to come can start
before them.

    shop = DemoShop(customers=2000, seed=7, now_ms=now)
    shop.products                      # ready for catalog.service.upsert_products
    for source, message in shop.messages():
        ...
    shop.truth                         # complete once messages() is exhausted
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Iterator
from typing import Any

from shopkeeper.demo import model as m
from shopkeeper.demo.activities import RENDERERS
from shopkeeper.demo.catalog import generate_catalog
from shopkeeper.demo.emit import SOURCES, Emitter, ShopCatalog, Truth
from shopkeeper.demo.people import make_person

__all__ = ["SOURCES", "DemoShop", "Truth"]

_ARRIVE = "arrive"
# Sessions last well under an hour; activities start this long before `now` at the
# latest, so that no message is dated after it.
_END_MARGIN = 3 * m.HOUR


class DemoShop:
    def __init__(
        self,
        customers: int,
        seed: int,
        now_ms: int,
        params: m.ModelParams | None = None,
        catalog_size: int = 360,
    ) -> None:
        if customers < 1:
            raise ValueError("customers must be at least 1")
        self.customers = customers
        self.seed = seed
        self.now_ms = now_ms
        self.params = params or m.ModelParams()
        catalog_rng = random.Random(f"shopkeeper-demo:{seed}:catalog")
        self.products: list[dict[str, Any]] = generate_catalog(catalog_rng, catalog_size)
        self._rng = random.Random(f"shopkeeper-demo:{seed}:people")
        self._catalog = ShopCatalog(catalog_rng, self.products)
        self._emitter = Emitter(self._rng, self._catalog, self.params, now_ms)
        self._used = False

    @property
    def truth(self) -> Truth:
        return self._emitter.truth

    @property
    def window(self) -> m.Window:
        return m.Window(self.now_ms - self.params.days * m.DAY, self.now_ms - _END_MARGIN)

    def messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(source, message) pairs in timestamp order. Can be consumed once."""
        if self._used:
            raise RuntimeError("the stream of a DemoShop can be consumed once")
        self._used = True
        rng, params, em = self._rng, self.params, self._emitter
        window = self.window
        planner = m.Planner(rng, params, window)
        year = time.gmtime(self.now_ms / 1000).tm_year
        seq = itertools.count()
        activities: list[tuple[int, int, str, Any, Any]] = []
        for index in range(self.customers):
            arrival = planner.arrival()
            # A plan places its first activity within the local day of the arrival, so
            # the person is created a day ahead: nothing is planned into the past.
            activities.append((arrival - m.DAY, next(seq), _ARRIVE, index, arrival))
        heapq.heapify(activities)
        pending: list[tuple[int, int, str, dict[str, Any]]] = []
        used: set[str] = set()
        weights = self._catalog.category_weights
        while activities:
            at, _, kind, who, details = heapq.heappop(activities)
            if kind == _ARRIVE:
                person = make_person(rng, who, planner.kind(), weights, used, year)
                for when, what, how in planner.plan(person, details):
                    heapq.heappush(activities, (when, next(seq), what, person, how))
                    person.pending += 1
            else:
                person = who
                for when, what, how in RENDERERS[kind](em, person, details, at):
                    if when < window.end_ms:
                        heapq.heappush(activities, (when, next(seq), what, person, how))
                        person.pending += 1
                person.pending -= 1
                if person.pending == 0:
                    em.finish_person(person)
                for when, source, message in em.out:
                    heapq.heappush(pending, (when, next(seq), source, message))
                em.out.clear()
            horizon = activities[0][0] if activities else self.now_ms
            while pending and pending[0][0] <= horizon:
                _, _, source, message = heapq.heappop(pending)
                yield source, message
        while pending:
            _, _, source, message = heapq.heappop(pending)
            yield source, message
