"""The edge import parser (``service.speculation.imports``), without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ValidationFailed
from service.speculation.imports import MAX_EDGE_COUNT, MAX_IMPORT_EDGES, parse_import

SEGMENTS = ("en-d", "tr-m")
ORIGINS = frozenset({"https://example.com"})


def refused(body: Any) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        parse_import(body, SEGMENTS, ORIGINS)
    return caught.value


def test_edges_are_normalized_summed_and_self_loops_dropped() -> None:
    parsed = parse_import(
        {
            "seg": "tr-m",
            "replace": True,
            "edges": [
                {"from": "/", "to": "/tr/projects", "count": 30},
                {"from": "https://example.com/", "to": "/tr/projects/?x=1", "count": 10},
                {"from": "/tr/a", "to": "/tr/a/", "count": 7},  # the same page: dropped
                {"from": "/", "to": "/tr/about", "count": 1, "note": "extra keys are ignored"},
            ],
        },
        SEGMENTS,
        ORIGINS,
    )
    assert (parsed.seg, parsed.replace) == ("tr-m", True)
    assert parsed.edges == {("/", "/tr/projects"): 40, ("/", "/tr/about"): 1}


def test_replace_defaults_to_adding() -> None:
    parsed = parse_import({"seg": "en-d", "edges": []}, SEGMENTS, ORIGINS)
    assert (parsed.replace, parsed.edges) == (False, {})


@pytest.mark.parametrize("body", [[], "edges", None, 3])
def test_the_body_must_be_an_object(body: Any) -> None:
    error = refused(body)
    assert error.message == "the body must be an object"
    assert error.details is None


@pytest.mark.parametrize(
    "body", [{"seg": "en-d"}, {"seg": "en-d", "edges": {}}, {"seg": "en-d", "edges": "x"}]
)
def test_edges_must_be_an_array(body: dict[str, Any]) -> None:
    error = refused(body)
    assert error.message == "the body must be an object with a 'edges' array"
    assert error.details == [{"field": "body.edges", "message": "required array"}]


def test_at_most_so_many_edges() -> None:
    edge = {"from": "/", "to": "/a", "count": 1}
    error = refused({"seg": "en-d", "edges": [edge] * (MAX_IMPORT_EDGES + 1)})
    assert error.message == f"at most {MAX_IMPORT_EDGES} edges per request"


def test_every_problem_is_listed_and_nothing_half_parsed() -> None:
    error = refused(
        {
            "seg": "xx-d",
            "replace": "yes",
            "edges": [
                {"from": "/", "to": "/ok", "count": 1},
                {"from": "/", "to": "/y", "count": 0},
                {"from": "bad"},
                {"from": "https://evil.example/", "to": "/z", "count": 1},
                "not an object",
            ],
        }
    )
    assert error.message == "6 problem(s) in the import; nothing was stored"
    details: list[dict[str, Any]] = error.details
    assert details[:2] == [
        {"field": "body.seg", "message": "unknown segment"},
        {"field": "body.replace", "message": "must be a boolean"},
    ]
    assert [d["index"] for d in details[2:]] == [1, 2, 3, 4]
    # Field problems name the field under the edge's index; path problems say what is wrong.
    assert details[2]["message"] == "1 field(s) failed validation"
    assert [d["field"] for d in details[2]["details"]] == ["edges.1.count"]
    assert {d["field"] for d in details[3]["details"]} == {"edges.2.to", "edges.2.count"}
    assert details[4] == {"index": 3, "message": "the URL is not on this site's origin"}
    assert details[5]["details"][0]["field"] == "edges.4"


def test_a_malformed_segment_gets_the_syntax_message() -> None:
    error = refused({"seg": "EN-D", "edges": []})
    assert error.details == [
        {
            "field": "body.seg",
            "message": "seg must be '<language>-<device>' "
            "(2-3 and 1-4 lower-case letters, e.g. 'en-d')",
        }
    ]


def test_summed_counts_stay_within_the_bound() -> None:
    edges = [
        {"from": "/", "to": "/a", "count": MAX_EDGE_COUNT},
        {"from": "/", "to": "/a/", "count": 1},
    ]
    error = refused({"seg": "en-d", "edges": edges})
    assert error.message == f"an edge's count exceeds {MAX_EDGE_COUNT}"
