from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atalaya.hashsets.categories import (
    Category,
    CategoryError,
    CategoryMap,
    normalise,
    parse_category_map,
    parse_internal,
    vics_variant,
)

US_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/US/$metadata#Media"
UK_CONTEXT = "http://github.com/VICSDATAMODEL/ProjectVic/DataModels/2.0.xml/UK/$metadata#Media"


def test_scale_is_ordered_by_severity() -> None:
    assert [c.value for c in Category] == [0, 1, 2, 3, 4]
    assert Category.SEVERE_ABUSE > Category.ABUSE > Category.EXPLOITATIVE > Category.UNRATED
    assert Category.UNRATED > Category.NOT_PERTINENT
    assert Category.SEVERE_ABUSE.label == "severe_abuse"


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("0", Category.NOT_PERTINENT),
        ("1", Category.ABUSE),
        ("2", Category.EXPLOITATIVE),
        ("3", Category.EXPLOITATIVE),
        ("4", Category.NOT_PERTINENT),
        ("Cat 1", Category.ABUSE),
        ("CAT-2", Category.EXPLOITATIVE),
        ("A", Category.SEVERE_ABUSE),
        ("b", Category.ABUSE),
        ("Category C", Category.ABUSE),
        ("abuse", Category.ABUSE),
        ("Severe-Abuse", Category.SEVERE_ABUSE),
        ("severe abuse", Category.SEVERE_ABUSE),
        ("NOT_PERTINENT", Category.NOT_PERTINENT),
        ("unrated", Category.UNRATED),
        ("exploitative", Category.EXPLOITATIVE),
    ],
)
def test_known_schemes(label: str, expected: Category) -> None:
    assert CategoryMap().resolve(label) is expected


@pytest.mark.parametrize("label", ["5", "9", "D", "csam", "", "  ", "1.0", "category"])
def test_unknown_labels_say_how_to_map_them(label: str) -> None:
    with pytest.raises(CategoryError) as info:
        CategoryMap().resolve(label)
    assert "--category-map" in str(info.value)


def test_operator_map_overrides_and_extends() -> None:
    overrides = parse_category_map(["5=not_pertinent", "1=severe_abuse", "Kat X=abuse"])
    cmap = CategoryMap(overrides)
    assert cmap.resolve("5") is Category.NOT_PERTINENT
    assert cmap.resolve("1") is Category.SEVERE_ABUSE
    assert cmap.resolve("kat x") is Category.ABUSE
    assert cmap.resolve("2") is Category.EXPLOITATIVE  # the rest still by scheme


def test_label_with_equals_sign_maps_on_the_last_one() -> None:
    assert parse_category_map(["a=b=abuse"]) == {"a=b": Category.ABUSE}


@pytest.mark.parametrize("entry", ["abuse", "=abuse", "5=", "5=worst", "5=3"])
def test_bad_map_entries(entry: str) -> None:
    with pytest.raises(CategoryError):
        parse_category_map([entry])


def test_parse_internal() -> None:
    assert parse_internal("Exploitative") is Category.EXPLOITATIVE
    with pytest.raises(CategoryError):
        parse_internal("1")


def test_vics_variant_governs_integer_labels() -> None:
    assert vics_variant(US_CONTEXT) == "US"
    assert vics_variant(UK_CONTEXT) == "UK"
    assert vics_variant("something else") is None
    assert vics_variant(None) is None
    assert CategoryMap(vics_context=US_CONTEXT).resolve("1") is Category.ABUSE
    uk = CategoryMap(vics_context=UK_CONTEXT)
    with pytest.raises(CategoryError, match="'UK'"):
        uk.resolve("1")
    assert uk.resolve("A") is Category.SEVERE_ABUSE  # letters do not depend on it
    mapped = CategoryMap({"1": Category.SEVERE_ABUSE}, vics_context=UK_CONTEXT)
    assert mapped.resolve("1") is Category.SEVERE_ABUSE
    mapped.set_vics_context(US_CONTEXT)
    assert mapped.resolve("2") is Category.EXPLOITATIVE


@given(st.text(max_size=40))
def test_any_label_resolves_or_raises_category_error(label: str) -> None:
    try:
        result = CategoryMap().resolve(label)
    except CategoryError:
        return
    assert isinstance(result, Category)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Cat 1", "1"),
        ("cat1", "1"),
        ("CATEGORY: A", "a"),
        ("category", "category"),
        ("catalog", "catalog"),
        ("Severe Abuse", "severe_abuse"),
    ],
)
def test_normalise(label: str, expected: str) -> None:
    assert normalise(label) == expected
