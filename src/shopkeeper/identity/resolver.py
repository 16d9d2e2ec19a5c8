"""Which profile a message belongs to: the decision, without the database.

The pipeline gives the resolver a message's identifiers (strongest first) and a view of
who owns which identifier; the resolver answers with a plan: the profiles to merge, the
new identifiers to attach, the merges it refused and the identifiers it dropped. The
pipeline carries the plan out.

Rules (in the spirit of Segment Unify's identity resolution):
- Identifiers are taken strongest first. A profile that owns one of them joins the merge
  group unless the group and that profile together would hold more identifiers of some
  type than its limit allows (by default one user id: two people with different user
  ids never merge). Such a merge is refused and recorded.
- An unknown identifier is attached unless the group already holds the limit of its type;
  then it is dropped (so a user id B arriving with anonymous id X that belongs to user A
  starts or reaches B's own profile instead of being stuck on A's).
- The oldest profile of the group survives a merge (stable ids for the people who have
  been around longest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shopkeeper.identity.identifiers import Identifier


class IdentityView(Protocol):
    def owners(self, identifiers: Sequence[Identifier]) -> dict[Identifier, int]:
        """The profile that owns each identifier that has an owner."""
        ...

    def identities_of(self, profile_id: int) -> dict[str, set[str]]:
        """Every identifier of a profile, as type -> values."""
        ...


@dataclass(frozen=True, slots=True)
class Refusal:
    other_id: int
    identifiers: tuple[Identifier, ...]
    reason: str


@dataclass(slots=True)
class Resolution:
    # Existing profiles to become one: empty means a new profile is created.
    profiles: list[int] = field(default_factory=list)
    attach: list[Identifier] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    dropped: list[tuple[Identifier, str]] = field(default_factory=list)

    @property
    def survivor(self) -> int | None:
        return min(self.profiles) if self.profiles else None

    @property
    def absorbed(self) -> list[int]:
        survivor = self.survivor
        return sorted(p for p in self.profiles if p != survivor)


class Resolver:
    def __init__(self, limits: Mapping[str, int], default_limit: int) -> None:
        self.limits = dict(limits)
        self.default_limit = default_limit

    def limit(self, type_: str) -> int:
        return self.limits.get(type_, self.default_limit)

    def resolve(
        self,
        identifiers: Sequence[Identifier],
        view: IdentityView,
        alias_previous: Sequence[Identifier] = (),
    ) -> Resolution:
        """Plan for one message. `alias_previous` holds an alias's previousId read both as
        a user id and as an anonymous id: whichever is known links, else it is attached
        as an anonymous id."""
        owners = view.owners([*identifiers, *alias_previous])
        ordered = list(identifiers)
        if alias_previous:
            known = [ident for ident in alias_previous if ident in owners]
            ordered.append(known[0] if known else alias_previous[-1])

        plan = Resolution()
        # Identifier values the group would hold, per type; filled lazily from the
        # profiles' stored identities only when a check needs them.
        group: dict[str, set[str]] = {}
        loaded: set[int] = set()
        refused: dict[int, list[Identifier]] = {}
        reasons: dict[int, str] = {}

        def load_group() -> None:
            for profile_id in plan.profiles:
                if profile_id not in loaded:
                    loaded.add(profile_id)
                    for type_, values in view.identities_of(profile_id).items():
                        group.setdefault(type_, set()).update(values)

        for ident in ordered:
            owner = owners.get(ident)
            if owner is None:
                load_group()
                values = group.setdefault(ident.type, set())
                if ident.value in values:
                    continue
                if len(values) + 1 > self.limit(ident.type):
                    plan.dropped.append(
                        (ident, f"the profile already holds {len(values)} {ident.type} (limit)")
                    )
                    continue
                values.add(ident.value)
                plan.attach.append(ident)
                continue
            if owner in plan.profiles:
                continue
            if owner in refused:
                refused[owner].append(ident)
                continue
            if not plan.profiles and not group:
                plan.profiles.append(owner)
                continue
            load_group()
            theirs = view.identities_of(owner)
            conflict = self._conflict(group, theirs)
            if conflict is None:
                plan.profiles.append(owner)
                loaded.add(owner)
                for type_, values in theirs.items():
                    group.setdefault(type_, set()).update(values)
            else:
                refused[owner] = [ident]
                reasons[owner] = conflict
        plan.refused = [
            Refusal(other, tuple(idents), reasons[other]) for other, idents in refused.items()
        ]
        return plan

    def _conflict(self, group: dict[str, set[str]], theirs: dict[str, set[str]]) -> str | None:
        for type_, values in theirs.items():
            ours = group.get(type_, set())
            together = len(ours | values)
            limit = self.limit(type_)
            if together > limit:
                if type_ == "user_id" and limit == 1:
                    mine = ", ".join(sorted(ours))
                    other = ", ".join(sorted(values))
                    return f"different user ids ({mine} / {other})"
                return f"together they would hold {together} {type_} identifiers (limit {limit})"
        return None
