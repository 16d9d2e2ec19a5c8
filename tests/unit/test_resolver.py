"""The resolution rules, on an in-memory identity graph."""

from __future__ import annotations

from collections.abc import Sequence

from shopkeeper.identity.identifiers import Identifier
from shopkeeper.identity.resolver import Resolver

U = lambda v: Identifier("user_id", v)  # noqa: E731
A = lambda v: Identifier("anonymous_id", v)  # noqa: E731
E = lambda v: Identifier("email", v)  # noqa: E731


class Graph:
    def __init__(self, owned: dict[Identifier, int]) -> None:
        self.owned = owned
        self.loads: list[int] = []

    def owners(self, identifiers: Sequence[Identifier]) -> dict[Identifier, int]:
        return {i: self.owned[i] for i in identifiers if i in self.owned}

    def identities_of(self, profile_id: int) -> dict[str, set[str]]:
        self.loads.append(profile_id)
        out: dict[str, set[str]] = {}
        for ident, owner in self.owned.items():
            if owner == profile_id:
                out.setdefault(ident.type, set()).add(ident.value)
        return out


resolver = Resolver({"user_id": 1, "email": 2}, default_limit=5)


def test_unknown_identifiers_make_a_new_profile() -> None:
    plan = resolver.resolve([U("1"), A("a")], Graph({}))
    assert plan.profiles == []
    assert plan.attach == [U("1"), A("a")]


def test_known_identifier_reaches_its_profile_without_loading_identities() -> None:
    graph = Graph({A("a"): 7})
    plan = resolver.resolve([A("a")], graph)
    assert plan.profiles == [7]
    assert plan.attach == []
    assert graph.loads == []


def test_login_links_the_anonymous_profile_to_the_known_one_oldest_survives() -> None:
    graph = Graph({U("1"): 9, A("a"): 4})
    plan = resolver.resolve([U("1"), A("a")], graph)
    assert plan.profiles == [9, 4]
    assert plan.survivor == 4
    assert plan.absorbed == [9]
    assert plan.refused == []


def test_two_user_ids_never_merge() -> None:
    graph = Graph({U("ana"): 1, A("shared-laptop"): 1})
    plan = resolver.resolve([U("bob"), A("shared-laptop")], graph)
    # bob gets a profile of his own; the laptop's anonymous id stays with ana
    assert plan.profiles == []
    assert plan.attach == [U("bob")]
    assert len(plan.refused) == 1
    refusal = plan.refused[0]
    assert refusal.other_id == 1
    assert refusal.identifiers == (A("shared-laptop"),)
    assert refusal.reason == "different user ids (bob / ana)"


def test_conflicting_known_profiles_stay_apart_and_the_stronger_id_wins() -> None:
    graph = Graph({U("ana"): 1, U("bob"): 2, E("bob@x.com"): 2})
    plan = resolver.resolve([U("ana"), E("bob@x.com")], graph)
    assert plan.profiles == [1]
    assert [r.other_id for r in plan.refused] == [2]


def test_limit_drops_a_new_identifier_over_the_limit() -> None:
    graph = Graph({U("ana"): 1, E("a@x.com"): 1, E("b@x.com"): 1})
    plan = resolver.resolve([U("ana"), E("c@x.com")], graph)
    assert plan.profiles == [1]
    assert plan.attach == []
    assert plan.dropped[0][0] == E("c@x.com")


def test_limit_refuses_a_merge_that_would_exceed_it() -> None:
    graph = Graph({E("a@x.com"): 1, E("b@x.com"): 1, A("x"): 2, E("c@x.com"): 2})
    plan = resolver.resolve([E("a@x.com"), A("x")], graph)
    assert plan.profiles == [1]
    assert plan.refused[0].other_id == 2
    assert "3 email identifiers (limit 2)" in plan.refused[0].reason


def test_three_way_merge() -> None:
    graph = Graph({U("1"): 5, E("a@x.com"): 3, A("z"): 8})
    plan = resolver.resolve([U("1"), E("a@x.com"), A("z")], graph)
    assert sorted(plan.profiles) == [3, 5, 8]
    assert plan.survivor == 3
    assert plan.absorbed == [5, 8]


def test_alias_links_a_known_anonymous_id() -> None:
    graph = Graph({A("old"): 2})
    plan = resolver.resolve([U("new")], graph, alias_previous=[U("old"), A("old")])
    assert plan.profiles == [2]
    assert plan.attach == [U("new")]


def test_alias_of_an_unknown_id_attaches_it_as_anonymous() -> None:
    plan = resolver.resolve([U("new")], Graph({}), alias_previous=[U("old"), A("old")])
    assert plan.attach == [U("new"), A("old")]


def test_alias_between_two_user_ids_is_refused() -> None:
    graph = Graph({U("old"): 2, U("new"): 3})
    plan = resolver.resolve([U("new")], graph, alias_previous=[U("old"), A("old")])
    assert plan.profiles == [3]
    assert plan.refused[0].other_id == 2
