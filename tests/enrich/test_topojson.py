from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atalaya.enrich.topojson import (
    Geometry,
    TopoJSONError,
    TopoJSONLimits,
    decode,
    decode_object,
    members,
)
from tests.enrich.topo import encode, square

# The example of the TopoJSON specification (1.0, section 1.1), hand-decoded below.
SPEC_EXAMPLE = {
    "type": "Topology",
    "transform": {
        "scale": [0.035896033450880604, 0.005251163636665131],
        "translate": [-179.14350338367416, 18.906117143691233],
    },
    "objects": {
        "example": {
            "type": "GeometryCollection",
            "geometries": [
                {"type": "Point", "properties": {"prop0": "value0"}, "coordinates": [4000, 5000]},
                {"type": "LineString", "properties": {"prop0": "value0"}, "arcs": [0]},
                {"type": "Polygon", "properties": {"prop0": "value0"}, "arcs": [[-2]]},
            ],
        }
    },
    "arcs": [
        [[4000, 0], [1999, 9999], [2000, -9999], [2000, 9999]],
        [[0, 0], [0, 9999], [2000, 0], [0, -9999], [-2000, 0]],
    ],
}
KX, KY = 0.035896033450880604, 0.005251163636665131
DX, DY = -179.14350338367416, 18.906117143691233


def q(x: int, y: int) -> tuple[float, float]:
    return (x * KX + DX, y * KY + DY)


def test_spec_example_decodes_to_the_hand_computed_positions() -> None:
    topo = decode(json.dumps(SPEC_EXAMPLE).encode())
    point, line, polygon = members(topo.objects["example"])
    assert point.type == "Point"
    assert point.coordinates == q(4000, 5000)
    assert point.properties == {"prop0": "value0"}
    # Arc 0, delta-decoded: (4000,0) (5999,9999) (7999,0) (9999,9999).
    assert line.coordinates == [q(4000, 0), q(5999, 9999), q(7999, 0), q(9999, 9999)]
    # [[-2]] is arc 1 reversed: (0,0) (2000,0) (2000,9999) (0,9999) (0,0).
    assert polygon.polygons == [[[q(0, 0), q(2000, 0), q(2000, 9999), q(0, 9999), q(0, 0)]]]


def test_arcs_join_without_repeating_the_shared_position() -> None:
    raw = {
        "type": "Topology",
        "arcs": [[[0, 0], [1, 0], [1, 1]], [[1, 1], [0, 1], [0, 0]]],
        "objects": {
            "ring": {"type": "Polygon", "arcs": [[0, 1]], "id": 7},
            "reversed": {"type": "Polygon", "arcs": [[~1, ~0]]},
            "lines": {"type": "MultiLineString", "arcs": [[0], [~1]]},
        },
    }
    topo = decode_object(raw)
    assert topo.objects["ring"].id == "7"
    assert topo.objects["ring"].polygons == [[[(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]]]
    assert topo.objects["reversed"].polygons == [[[(0, 0), (0, 1), (1, 1), (1, 0), (0, 0)]]]
    assert topo.objects["lines"].coordinates == [
        [(0, 0), (1, 0), (1, 1)],
        [(0, 0), (0, 1), (1, 1)],
    ]


def test_only_decodes_the_named_objects() -> None:
    data = encode({"a": [("1", "A", [[square(0, 0, 1)]])], "b": [("2", "B", [[square(2, 0, 1)]])]})
    assert list(decode(data, only=["b"]).objects) == ["b"]
    with pytest.raises(TopoJSONError, match="no object"):
        decode(data, only=["missing"])


def test_null_geometry_and_nested_collections() -> None:
    raw = {
        "type": "Topology",
        "arcs": [],
        "objects": {
            "c": {
                "type": "GeometryCollection",
                "geometries": [
                    {"type": None, "id": "x"},
                    {
                        "type": "GeometryCollection",
                        "geometries": [{"type": "Point", "coordinates": [1, 2]}],
                    },
                    {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4.5]]},
                ],
            }
        },
    }
    nothing, nested, multi = members(decode_object(raw).objects["c"])
    assert nothing == Geometry(None, id="x")
    assert nested.geometries[0].coordinates == (1.0, 2.0)
    assert multi.coordinates == [(1.0, 2.0), (3.0, 4.5)]
    assert nothing.polygons == []


BAD: list[tuple[Any, str]] = [
    ({"type": "Feature"}, "not a TopoJSON topology"),
    ([], "not a TopoJSON topology"),
    ({"type": "Topology", "objects": []}, "objects must be an object"),
    ({"type": "Topology", "objects": {}, "arcs": {}}, "arcs must be a list"),
    ({"type": "Topology", "objects": {}, "arcs": [[[0, 0]]]}, "arc 0 must be"),
    ({"type": "Topology", "objects": {}, "transform": {"scale": [1]}}, "transform.scale"),
    ({"type": "Topology", "objects": {}, "transform": [1]}, "transform must be an object"),
    ({"type": "Topology", "objects": {}, "bbox": [1, 2]}, "bbox"),
    (
        {"type": "Topology", "objects": {"a": {"type": "Polygon", "arcs": [[0]]}}, "arcs": []},
        "out of range",
    ),
    (
        {"type": "Topology", "objects": {"a": {"type": "Polygon", "arcs": [[-1]]}}, "arcs": []},
        "out of range",
    ),
    (
        {"type": "Topology", "objects": {"a": {"type": "Polygon", "arcs": [[True]]}}, "arcs": []},
        "integers",
    ),
    (
        {"type": "Topology", "objects": {"a": {"type": "Polygon", "arcs": [[]]}}, "arcs": []},
        "non-empty",
    ),
    (
        {"type": "Topology", "objects": {"a": {"type": "Polygon", "arcs": []}}, "arcs": []},
        "at least one ring",
    ),
    (
        {
            "type": "Topology",
            "objects": {"a": {"type": "Polygon", "arcs": [[0]]}},
            "arcs": [[[0, 0], [1, 1]]],
        },
        "end where it starts",
    ),
    (
        {"type": "Topology", "objects": {"a": {"type": "Circle"}}, "arcs": []},
        "unknown geometry type",
    ),
    ({"type": "Topology", "objects": {"a": 5}, "arcs": []}, "must be an object"),
    ({"type": "Topology", "objects": {"a": {"type": None, "id": 1.5}}}, "id must be"),
    ({"type": "Topology", "objects": {"a": {"type": None, "properties": []}}}, "properties"),
    ({"type": "Topology", "objects": {"a": {"type": "Point", "coordinates": ["1", 2]}}}, "number"),
    (
        {"type": "Topology", "objects": {"a": {"type": "Point", "coordinates": [10**400, 2]}}},
        "too large",
    ),
    (
        {"type": "Topology", "objects": {"a": {"type": "MultiPoint", "coordinates": 3}}},
        "must be a list",
    ),
    (
        {
            "type": "Topology",
            "transform": {"scale": [1e308, 1e308], "translate": [0, 0]},
            "objects": {"a": {"type": "LineString", "arcs": [0]}},
            "arcs": [[[10**9, 0], [10**9, 0]]],
        },
        "finite",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_malformed_topologies_fail_with_their_reason(raw: Any, message: str) -> None:
    with pytest.raises(TopoJSONError, match=message):
        decode(json.dumps(raw).encode())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"{", "not JSON"),
        (b'{"type": "Topology", "arcs": [[[NaN, 0], [1, 1]]], "objects": {}}', "non-finite"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply|not a TopoJSON"),
    ],
)
def test_bad_bytes_fail_with_the_typed_error(data: bytes, message: str) -> None:
    with pytest.raises(TopoJSONError, match=message):
        decode(data)


def test_limits_are_enforced() -> None:
    data = encode({"a": [(str(i), "x", [[square(i, 0, 1)]]) for i in range(5)]})
    with pytest.raises(TopoJSONError, match="larger than"):
        decode(data, TopoJSONLimits(max_bytes=10))
    with pytest.raises(TopoJSONError, match="arcs"):
        decode(data, TopoJSONLimits(max_arcs=4))
    with pytest.raises(TopoJSONError, match="positions"):
        decode(data, TopoJSONLimits(max_positions=30))
    with pytest.raises(TopoJSONError, match="geometries"):
        decode(data, TopoJSONLimits(max_geometries=3))
    nested: dict[str, Any] = {"type": "Point", "coordinates": [0, 0]}
    for _ in range(10):
        nested = {"type": "GeometryCollection", "geometries": [nested]}
    raw = {"type": "Topology", "objects": {"deep": nested}}
    with pytest.raises(TopoJSONError, match="nested deeper"):
        decode_object(raw, TopoJSONLimits(max_collection_depth=8))
    assert decode_object(raw, TopoJSONLimits(max_collection_depth=11)).objects


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        ["Topology", "Polygon", "MultiPolygon", "GeometryCollection", "Point", "arcs"]
    ),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "arcs",
                    "objects",
                    "transform",
                    "scale",
                    "translate",
                    "coordinates",
                    "geometries",
                    "id",
                    "properties",
                    "bbox",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=40,
)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_value_decodes_or_fails_with_the_typed_error(raw: Any) -> None:
    if isinstance(raw, dict):
        raw = {**raw, "type": "Topology"}
    with contextlib.suppress(TopoJSONError):
        decode(json.dumps(raw).encode())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_fail_with_the_typed_error(data: bytes) -> None:
    with contextlib.suppress(TopoJSONError):
        decode(data)


coordinate = st.floats(min_value=-170, max_value=170, allow_nan=False).map(lambda v: round(v, 6))


@st.composite
def squares(draw: st.DrawFn) -> list[tuple[str, str, list[list[list[tuple[float, float]]]]]]:
    count = draw(st.integers(min_value=1, max_value=6))
    out = []
    for i in range(count):
        x, y = draw(coordinate), draw(coordinate.filter(lambda v: -80 < v < 80))
        size = draw(st.floats(min_value=0.01, max_value=5).map(lambda v: round(v, 4)))
        out.append((f"{i:05d}", f"area {i}", [[square(x, y, size)]]))
    return out


@settings(max_examples=150, deadline=None)
@given(squares())
def test_encoded_polygons_round_trip_exactly(features: Any) -> None:
    topo = decode(encode({"areas": features}))
    decoded = members(topo.objects["areas"])
    assert [(g.id, g.properties["name"], g.polygons) for g in decoded] == features


@settings(max_examples=150, deadline=None)
@given(squares())
def test_quantized_polygons_round_trip_within_the_quantum(features: Any) -> None:
    quantization = 100_000
    xs = [p[0] for _, _, polys in features for p in polys[0][0]]
    ys = [p[1] for _, _, polys in features for p in polys[0][0]]
    tolerance = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9) / (quantization - 1)
    topo = decode(encode({"areas": features}, quantization=quantization))
    for geometry, (_, _, polygons) in zip(members(topo.objects["areas"]), features, strict=True):
        got = geometry.polygons[0][0]
        want = polygons[0][0]
        assert len(got) == len(want)
        for (gx, gy), (wx, wy) in zip(got, want, strict=True):
            assert abs(gx - wx) <= tolerance
            assert abs(gy - wy) <= tolerance
