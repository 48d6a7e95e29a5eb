"""Domain rules of flows: paths, segments, exclusions, ranking and the speculation JSON."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.flows.paths import MAX_PATH_LENGTH, normalize_path
from core.flows.ranking import Exclusions, RankedRoute, rank
from core.flows.rules import RulesConfig, build_rules, escape_url_pattern, score_bucket
from core.flows.segments import start_paths, validate_segment
from core.flows.simulate import SimulationConfig, rank_segment
from tests.reference import walk_ref
from tests.speculation import rules_syntax

ORIGINS = {"https://example.com", "http://localhost:8000"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("/en/projects/", "/en/projects"),
        ("//en//projects//", "/en/projects"),
        ("/en/./a/../projects", "/en/projects"),
        ("/..", "/"),
        ("/en/projects?page=2#top", "/en/projects"),
        ("https://EXAMPLE.com:443/en/projects/?utm=x", "/en/projects"),
        ("https://example.com", "/"),
        ("http://localhost:8000/de", "/de"),
        ("/tr/ürünler", "/tr/%C3%BCr%C3%BCnler"),
        ("/tr/%c3%bcr%c3%bcnler", "/tr/%C3%BCr%C3%BCnler"),
        ("/a%20b", "/a%20b"),
    ],
)
def test_paths_are_normalized(raw: str, expected: str) -> None:
    assert normalize_path(raw, ORIGINS) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "en/projects",
        "https://evil.example/en",
        "https://example.com.evil.example/en",  # no prefix matching of origins
        "http://example.com/en",  # scheme is part of the origin
        "ftp://example.com/",
        "https://user:pw@example.com/",
        "/a b",
        "/a\nb",
        "/%ff",
        "/%00",
        "https://example.com:70000/",
        "/" + "a" * MAX_PATH_LENGTH,
    ],
)
def test_bad_paths_are_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        normalize_path(raw, ORIGINS)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=60))
def test_normalization_is_idempotent_and_total(tail: str) -> None:
    try:
        once = normalize_path("/" + tail, ORIGINS)
    except ValidationFailed:
        return  # refused cleanly: the only other allowed outcome
    assert normalize_path(once, ORIGINS) == once
    assert once.startswith("/") and (once == "/" or not once.endswith("/"))
    assert len(once) <= MAX_PATH_LENGTH and once.isascii()


def test_segments() -> None:
    known = {"en-d", "tr-m"}
    assert validate_segment("en-d", known) == "en-d"
    for bad in ("EN-d", "en", "english-desktop", "en_d", "", "de-d"):
        with pytest.raises(ValidationFailed):
            validate_segment(bad, known)
    assert start_paths("tr-m") == ["/", "/tr/projects"]
    assert start_paths("de-d", ("/{lang}", "/{lang}/shop")) == ["/de", "/de/shop"]


def test_exclusions_match_whole_paths_with_star_wildcards() -> None:
    ex = Exclusions(["/logout", "/admin/*", "/*/cart"])
    assert ex.excludes("/logout") and ex.excludes("/admin/users") and ex.excludes("/en/cart")
    assert not ex.excludes("/logout2") and not ex.excludes("/admin") and not ex.excludes("/cart")
    with pytest.raises(ValidationFailed):
        Exclusions(["/a(b)"])  # URL Pattern group syntax would mean something else in Chrome
    assert not Exclusions([]).excludes("/anything")


def test_rank_orders_by_score_then_path_and_applies_limits() -> None:
    paths = ["/a", "/b", "/c", "/d", "/logout", "/z"]
    scores = np.array([0.2, 0.5, 0.2, 0.001, 0.9, 0.0])
    got = rank(paths, scores, top=3, min_score=0.01, exclusions=Exclusions(["/logout"]))
    assert got == [RankedRoute("/b", 0.5), RankedRoute("/a", 0.2), RankedRoute("/c", 0.2)]
    assert rank(paths, scores, top=0) == []
    assert rank(paths, scores, top=10) == [
        RankedRoute("/logout", 0.9),
        RankedRoute("/b", 0.5),
        RankedRoute("/a", 0.2),
        RankedRoute("/c", 0.2),
        RankedRoute("/d", 0.001),
    ]


def test_rules_have_the_original_shape() -> None:
    # One route per score bucket: one rule per route, as in the original design.
    scores = [0.6, 0.3, 0.15, 0.07, 0.03, 0.015, 0.005]
    routes = [RankedRoute(f"/p{i}", score) for i, score in enumerate(scores)]
    config = RulesConfig(origin="https://example.com", prefetch_count=5)
    rules = build_rules(routes, "en-d", config)
    assert [r["where"]["href_matches"] for r in rules["prerender"]] == [
        "https://example.com/p0",
        "https://example.com/p1",
    ]
    assert len(rules["prefetch"]) == 5
    assert rules["prefetch"][-1]["where"] == {"href_matches": "https://example.com/p6"}
    assert {r["eagerness"] for r in rules["prerender"]} == {"moderate"}
    assert {r["eagerness"] for r in rules["prefetch"]} == {"eager"}
    assert all(r["source"] == "document" for r in rules["prerender"] + rules["prefetch"])
    assert [r["tag"] for r in rules["prerender"]] == ["kervan-en-d-s50", "kervan-en-d-s20"]
    assert [r["tag"] for r in rules["prefetch"]][-1] == "kervan-en-d-s0"


def test_routes_of_one_bucket_share_one_rule_in_rank_order() -> None:
    routes = [RankedRoute(f"/p{i}", 1.0 - i / 10) for i in range(9)]
    config = RulesConfig(origin="https://example.com", exclusions=Exclusions(["/logout"]))
    rules = build_rules(routes, "en-d", config)
    origin = "https://example.com"
    # 1.0 .. 0.5 are bucket s50, 0.4 .. 0.2 bucket s20.
    assert [(r["tag"], r["where"]["and"][0]["href_matches"]) for r in rules["prerender"]] == [
        ("kervan-en-d-s50", [f"{origin}/p0", f"{origin}/p1"]),
    ]
    assert [(r["tag"], r["where"]["and"][0]["href_matches"]) for r in rules["prefetch"]] == [
        ("kervan-en-d-s50", [f"{origin}/p{i}" for i in (2, 3, 4, 5)]),
        ("kervan-en-d-s20", [f"{origin}/p6", f"{origin}/p7"]),
    ]
    everything = rules["prerender"] + rules["prefetch"]
    assert all(
        r["where"]["and"][1] == {"not": {"href_matches": [f"{origin}/logout"]}} for r in everything
    )
    assert rules_syntax.problems(rules) == []
    assert rules_syntax.targets(rules["prefetch"]) == [f"{origin}/p{i}" for i in range(2, 8)]
    assert build_rules([], "en-d", RulesConfig(origin="https://x.org")) == {
        "prerender": [],
        "prefetch": [],
    }


def test_rules_carry_exclusions_as_not_clauses() -> None:
    config = RulesConfig(
        origin="https://example.com",
        prerender_count=1,
        prefetch_count=1,
        exclusions=Exclusions(["/logout", "/admin/*"]),
    )
    rules = build_rules([RankedRoute("/a", 0.3), RankedRoute("/b:c", 0.03)], "tr-m", config)
    assert rules["prerender"][0]["where"] == {
        "and": [
            {"href_matches": "https://example.com/a"},
            {
                "not": {
                    "href_matches": ["https://example.com/logout", "https://example.com/admin/*"]
                }
            },
        ]
    }
    # ":" would start a named group in URL Pattern syntax; a literal one is escaped.
    assert rules["prefetch"][0]["where"]["and"][0] == {"href_matches": "https://example.com/b\\:c"}
    assert rules["prefetch"][0]["tag"] == "kervan-tr-m-s2"


def test_score_buckets_and_pattern_escaping() -> None:
    assert [score_bucket(s) for s in (0.0, 0.009, 0.01, 0.3, 0.5, 2.5)] == [
        "s0",
        "s0",
        "s1",
        "s20",
        "s50",
        "s50",
    ]
    assert score_bucket(0.3, (0.25, 1.0)) == "s25"
    assert escape_url_pattern("/a*b(c)+{d}?:e") == "/a\\*b\\(c\\)\\+\\{d\\}\\?\\:e"


EDGES = [
    ("/", "/en/projects", 50),
    ("/", "/en/about", 30),
    ("/", "/logout", 20),
    ("/en/projects", "/en/projects/kervan", 70),
    ("/en/projects", "/", 30),
    ("/en/projects/kervan", "/en/contact", 10),
    ("/en/about", "/en/contact", 5),
]


def test_exact_ranking_matches_the_reference_programme() -> None:
    got = rank_segment(EDGES, "en-d", SimulationConfig(), mode="exact")
    ref = walk_ref.expected_visits_ref(walk_ref.normalize(EDGES), ["/", "/en/projects"], 3)
    expected = sorted(ref.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    assert [r.path for r in got] == [path for path, _ in expected]
    assert [r.score for r in got] == pytest.approx([score for _, score in expected], rel=1e-12)


@pytest.mark.parametrize("seed", [7, 8], ids=lambda s: f"seed={s}")
def test_montecarlo_ranking_agrees_with_exact_when_well_separated(seed: int) -> None:
    config = SimulationConfig(sims=20_000, seed=seed)
    mc = rank_segment(EDGES, "en-d", config, exclusions=Exclusions(["/logout"]))
    exact = rank_segment(EDGES, "en-d", config, mode="exact", exclusions=Exclusions(["/logout"]))
    assert [r.path for r in mc] == [r.path for r in exact]
    assert "/logout" not in [r.path for r in mc]
    for a, b in zip(mc, exact, strict=True):
        assert abs(a.score - b.score) <= 5 * (3 * b.score / config.sims) ** 0.5


def test_segment_without_data_ranks_nothing() -> None:
    assert rank_segment([], "de-d", SimulationConfig()) == []
    # Edges that never leave the start pages' component score nothing either.
    assert rank_segment([("/x", "/y", 3)], "de-d", SimulationConfig()) == []


_routes = st.lists(
    st.tuples(
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
        st.floats(min_value=0.0, max_value=3.0, allow_nan=False),
    ),
    max_size=12,
)


@settings(max_examples=100, deadline=None)
@given(routes=_routes, with_exclusions=st.booleans())
def test_rules_are_valid_speculation_rules(
    routes: list[tuple[str, float]], with_exclusions: bool
) -> None:
    ranked = []
    for tail, score in routes:
        try:
            ranked.append(RankedRoute(normalize_path("/" + tail, ORIGINS), score))
        except ValidationFailed:
            continue
    exclusions = Exclusions(["/logout", "/admin/*", "/*/cart"] if with_exclusions else [])
    config = RulesConfig(origin="https://example.com", exclusions=exclusions)
    rules = build_rules(ranked, "en-d", config)
    assert rules_syntax.problems(rules) == []
    assert len(rules_syntax.targets(rules["prerender"])) == min(2, len(ranked))


def test_the_syntax_checker_catches_bad_rules() -> None:
    bad = {
        "prerender": [
            {"source": "document", "where": {"href_matches": "https://x.org/a:b"}},
            {"source": "list", "urls": ["/a"]},
            {"source": "document", "where": {"href_matches": "/a", "not": {}}},
            {"source": "document", "eagerness": "sometimes", "tag": "t\u00e9"},
            {"source": "document", "colour": "red"},
        ]
    }
    assert len(rules_syntax.problems(bad)) == 7
    port = {"prefetch": [{"where": {"href_matches": "http://127.0.0.1:8000/a\\:b"}}]}
    assert rules_syntax.problems(port) == []


def test_weighted_starts_follow_the_reference() -> None:
    config = SimulationConfig(start_weights=(1.0, 9.0))  # mostly from /en/projects
    got = rank_segment(EDGES, "en-d", config, mode="exact")
    ref = walk_ref.expected_visits_ref(
        walk_ref.normalize(EDGES), ["/", "/en/projects"], 3, start_weights=[1.0, 9.0]
    )
    assert {r.path: r.score for r in got} == pytest.approx(ref, rel=1e-12)
    mc = rank_segment(EDGES, "en-d", SimulationConfig(start_weights=(1.0, 9.0), sims=20_000))
    assert [r.path for r in mc][:2] == [r.path for r in got][:2]


def test_speculation_settings_are_checked() -> None:
    from service.settings import Settings

    ok = Settings(_env_file=None, speculation_start_weights="1,3")  # type: ignore[call-arg,arg-type]
    assert ok.speculation_start_weights == [1.0, 3.0]
    for bad in (
        {"speculation_start_weights": "1"},
        {"speculation_start_weights": "1,-2"},
        {"speculation_segments": "en-d,EN"},
        {"speculation_start_paths": "/a/"},
        {"speculation_excluded_paths": "/a(b)"},
        {"speculation_score_buckets": "0"},
    ):
        with pytest.raises(ValueError):
            Settings(_env_file=None, **bad)  # type: ignore[call-arg,arg-type]


def test_page_views_pair_within_a_session_segment_and_time_window() -> None:
    from core.flows.events import Navigation, PageView, pair_page_views

    stored = {"s1": PageView("s1", "en-d", "/", 100.0)}
    views = [
        PageView("s1", "en-d", "/a", 110.0),
        PageView("s1", "en-d", "/a", 111.0),  # reload: no edge
        PageView("s1", "tr-m", "/b", 112.0),  # another segment: no edge, but it is the last
        PageView("s1", "tr-m", "/c", 5000.0),  # beyond the gap: no edge
        PageView("s2", "en-d", "/x", 50.0),
        PageView("s2", "en-d", "/y", 40.0),  # sorted by time: /y then /x
    ]
    navs, last = pair_page_views(views, stored, max_gap_seconds=1800)
    assert navs == [Navigation("en-d", "/", "/a"), Navigation("en-d", "/y", "/x")]
    assert last["s1"].path == "/c" and last["s2"].path == "/x"
    assert stored["s1"].path == "/"  # the input is left alone
    late, _ = pair_page_views([PageView("s1", "en-d", "/z", 90.0)], stored, 1800)
    assert late == []  # older than the stored view
