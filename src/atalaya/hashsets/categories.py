"""The internal severity scale, and how the labels of each source map onto it.

Every reference file keeps its source's label verbatim (`category_label`) and
gets one `Category` on the internal scale, so that sets from different
authorities can be compared, filtered and scored together.

Schemes known without configuration:

- Project VIC / VICS integer categories (VICS data model 2.0, US numbering,
  also what "Default" exports use). Sources for what each number means:
  the Project VIC category set that Autopsy creates (its ImageGalleryService,
  "kept in sync with the CountryManager code in the ProjectVic module"):
  0 Non-Pertinent, 1 Child Abuse Material (CAM), 2 Child Exploitive (non-CAM)
  / Age Difficult, 3 CGI/Animation - Child Exploitive, 4 Comparison Images;
  Griffeye's CSV exports name category 2 the same way ("Child Exploitive
  (non-CAM) / Age Difficult"). An older DHS scheme numbered the same ideas
  differently (0 Uncategorized … 5 Non-pertinent); label 5 is therefore not
  guessed: an operator who has such a file maps it with --category-map.
  Exports whose `@odata.context` names another national variant (for
  example ".../2.0.xml/UK/$metadata") use their own numbering, so integer
  labels from them are not mapped unless the operator says how.
- Letter schemes such as the UK sentencing grades (Sentencing Council, as
  summarised in HMICFRS's glossary): A penetrative sexual activity, sexual
  activity with an animal or sadism; B non-penetrative sexual activity;
  C other indecent images. All three are abuse material; A is the severe one.
- The internal names themselves (`abuse`, `severe_abuse`, …), for lists the
  operator labels with --category.

Anything else is an error that names the label and the way to map it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import IntEnum
from typing import Final


class Category(IntEnum):
    """Internal severity, higher is more severe."""

    NOT_PERTINENT = 0
    UNRATED = 1
    # Child exploitive, age-difficult, drawn/CGI: pertinent but not abuse material.
    EXPLOITATIVE = 2
    ABUSE = 3
    SEVERE_ABUSE = 4

    @property
    def label(self) -> str:
        """The internal name as operators write it (`severe_abuse`)."""
        return self.name.lower()


class CategoryError(ValueError):
    """A category label, or a --category-map entry, that cannot be mapped."""


# Project VIC (VICS 2.0, US numbering): see the module docstring for sources.
PROJECT_VIC: Final[Mapping[int, Category]] = {
    0: Category.NOT_PERTINENT,  # Non-Pertinent
    1: Category.ABUSE,  # Child Abuse Material (CAM)
    2: Category.EXPLOITATIVE,  # Child Exploitive (non-CAM) / Age Difficult
    3: Category.EXPLOITATIVE,  # CGI/Animation - Child Exploitive
    4: Category.NOT_PERTINENT,  # Comparison images (exemplars, not abuse material)
}

# The `@odata.context` variants whose integer categories are the numbering above.
PROJECT_VIC_VARIANTS: Final = frozenset({"us", "default"})

# UK grades A/B/C (Sentencing Council).
LETTER_GRADES: Final[Mapping[str, Category]] = {
    "a": Category.SEVERE_ABUSE,
    "b": Category.ABUSE,
    "c": Category.ABUSE,
}

INTERNAL_NAMES: Final[Mapping[str, Category]] = {c.label: c for c in Category}

_PREFIX = re.compile(r"^(?:category|cat)(?:[\s._:#-]+|(?=[0-9]))(?=\S)")
_SEPARATORS = re.compile(r"[\s-]+")
_VICS_VARIANT = re.compile(r"/DataModels/[^/]+/([^/$]+)/\$metadata", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]{1,3}")


def normalise(label: str) -> str:
    """The form labels are compared in: case-folded, "Cat 1" and "1" alike."""
    text = label.strip().casefold()
    text = _PREFIX.sub("", text)
    return _SEPARATORS.sub("_", text)


def vics_variant(odata_context: str | None) -> str | None:
    """The national variant a VICS `@odata.context` names ("US", "UK"…), if any."""
    if not odata_context:
        return None
    match = _VICS_VARIANT.search(odata_context)
    return match.group(1) if match else None


def parse_internal(name: str) -> Category:
    """An internal category from its name (`abuse`, `Severe-Abuse`…)."""
    category = INTERNAL_NAMES.get(normalise(name))
    if category is None:
        raise CategoryError(
            f"{name!r} is not an internal category (use one of {', '.join(INTERNAL_NAMES)})"
        )
    return category


def parse_category_map(entries: Iterable[str]) -> dict[str, Category]:
    """`LABEL=INTERNAL` entries (from --category-map) as a normalised mapping."""
    mapping: dict[str, Category] = {}
    for entry in entries:
        label, sep, internal = entry.rpartition("=")
        if not sep or not label.strip():
            raise CategoryError(
                f"--category-map {entry!r} is not LABEL=INTERNAL (for example 5=not_pertinent)"
            )
        mapping[normalise(label)] = parse_internal(internal)
    return mapping


class CategoryMap:
    """Maps source labels onto `Category`: operator overrides first, then known schemes."""

    def __init__(
        self, overrides: Mapping[str, Category] | None = None, *, vics_context: str | None = None
    ) -> None:
        self._overrides = {normalise(k): v for k, v in (overrides or {}).items()}
        self.set_vics_context(vics_context)
        self._cache: dict[str, Category] = {}

    def set_vics_context(self, odata_context: str | None) -> None:
        """Integer labels follow Project VIC numbering only for its known variants."""
        variant = vics_variant(odata_context)
        self._variant = variant
        self._integers_known = variant is None or variant.casefold() in PROJECT_VIC_VARIANTS
        self._cache = {}

    def resolve(self, label: str) -> Category:
        """The internal category for `label`, or CategoryError saying how to map it."""
        cached = self._cache.get(label)
        if cached is not None:
            return cached
        category = self._lookup(label)
        if len(self._cache) < 10_000:
            self._cache[label] = category
        return category

    def _lookup(self, label: str) -> Category:
        key = normalise(label)
        if key in self._overrides:
            return self._overrides[key]
        if key in INTERNAL_NAMES:
            return INTERNAL_NAMES[key]
        if key in LETTER_GRADES:
            return LETTER_GRADES[key]
        hint = f"add --category-map {label.strip()!r}=INTERNAL ({', '.join(INTERNAL_NAMES)})"
        if _DIGITS.fullmatch(key):
            if not self._integers_known:
                raise CategoryError(
                    f"category {label!r} comes from the VICS variant {self._variant!r}, whose "
                    f"numbering Atalaya does not know: {hint}"
                )
            category = PROJECT_VIC.get(int(key))
            if category is not None:
                return category
        raise CategoryError(f"unknown category {label!r}: {hint}")
