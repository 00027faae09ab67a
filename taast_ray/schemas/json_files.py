"""The JSON that comes from outside, as pydantic schemas: COCO / LVIS label documents, Label Studio's
JSON and JSON_MIN exports, and the tasks and categories a selection publishes (SPEC.md §7).

:func:`parse` validates a whole document in one pydantic-core pass and turns its first defect into
one line naming the file, the record and the field (:mod:`taast_ray.schemas.messages`).
Numbers are strict: no bool or string for a number, floats finite, ints within int64, image sizes
0 < size < 2**31. Unknown keys pass (real exports carry many). The rules that span records
(duplicate ids, an annotation naming an unknown image or category, a box label that is not a
category of the run) are validators here too, so every rule of these files is in this one.

Records are TypedDicts, validated into dicts: on 200k annotations a model instance each took half
as long again. Callers keep the raw document; what :func:`parse` returns is a checked copy.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Discriminator, Field, GetPydanticSchema, Strict,
                      StrictBool, Tag, TypeAdapter, ValidationError, ValidationInfo, model_validator)
from typing_extensions import Required, TypedDict

from taast_ray.schemas.messages import INT64, Contract, custom, describe, show
from taast_ray.errors import InputError

BOX_TYPE = "rectanglelabels"  # Label Studio's RectangleLabels results
BOX, OTHER, BOXES, DATA = "<box>", "<other>", "<boxes>", "<data>"  # tagged unions' tags

Int64 = Annotated[int, Strict(), Field(ge=INT64[0], le=INT64[1])]
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]     # an int or a finite float
Positive = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
ImageSide = Annotated[float, Strict(), Field(gt=0, lt=2**31, allow_inf_nan=False)]
Pixels = Annotated[int, Strict(), Field(gt=0, lt=2**31)]
Text = Annotated[str, Strict()]
Id = Annotated[Union[Int64, Text], GetPydanticSchema(lambda tp, handler: {  # one error, not one per member
    **handler(tp), "custom_error_type": "id_type", "custom_error_message": "must be a 64-bit integer or a string"})]


class Record(TypedDict, total=False):
    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]


def _first_duplicate(ids: list, plural: str, what: str) -> None:
    if len(set(ids)) == len(ids):
        return
    seen: dict = {}
    for k, value in enumerate(ids):
        if value in seen:
            raise custom("duplicate", "duplicate {what} id {value} (also {plural}[{first}])", (plural, k, "id"),
                         what=what, value=show(value), plural=plural, first=seen[value])
        seen[value] = k


# COCO / LVIS ----------------------------------------------------------------------------------

class Category(Record, total=False):
    id: Required[Int64]
    name: Optional[Text]
    frequency: Optional[Literal["r", "c", "f"]]  # LVIS: rare, common, frequent


class Image(Record, total=False):
    id: Required[Id]
    width: Optional[ImageSide]
    height: Optional[ImageSide]


class Annotation(Record, total=False):
    image_id: Required[Id]
    category_id: Required[Int64]
    bbox: Required[tuple[Number, Number, Positive, Positive]]  # x, y, w, h in pixels
    iscrowd: Optional[Annotated[int, Strict(), Field(ge=0, le=1)]]


class LabelDocument(BaseModel):
    model_config = ConfigDict(extra="allow")
    categories: list[Category] = Field(min_length=1, fail_fast=True)  # fail_fast: only the first is told
    images: Optional[list[Image]] = Field(None, fail_fast=True)
    annotations: Optional[list[Annotation]] = Field(None, fail_fast=True)

    @model_validator(mode="before")
    @classmethod
    def _a_coco_document(cls, data):
        if not isinstance(data, dict) or "categories" not in data:
            raise custom("not_coco", "missing the 'categories' list of a COCO/LVIS file")
        return data

    @model_validator(mode="after")
    def _ids_resolve(self):
        category_ids = [c["id"] for c in self.categories]
        _first_duplicate(category_ids, "categories", "category")
        image_ids = [i["id"] for i in self.images or ()]
        _first_duplicate(image_ids, "images", "image")
        annotations = self.annotations or ()
        for key, known in (("category_id", set(category_ids)), ("image_id", set(image_ids))):
            if (known or key == "category_id") and not {a[key] for a in annotations} <= known:  # no images: any
                k = next(k for k, a in enumerate(annotations) if a[key] not in known)
                raise custom("unknown_id", "unknown {what} {value}", ("annotations", k, key),
                             what=key[:-3], value=show(annotations[k][key]))
        return self


# Label Studio ---------------------------------------------------------------------------------

def _one_known_label(labels: list[str], info: ValidationInfo) -> list[str]:
    if len(labels) != 1:
        raise custom("one_label", "a rectangle needs exactly one label, got {labels}", labels=show(labels))
    names = (info.context or {}).get("category_names")
    if names is not None and labels[0] not in names:
        shown = sorted(names)
        raise custom("unknown_label", "label {label} is not a category of this run ({names})",
                     label=show(labels[0]), names=", ".join(shown[:12]) + (", ..." if len(shown) > 12 else ""))
    return labels


class RectangleValue(Record, total=False):
    """A RectangleLabels result's value, in percent of the image."""
    x: Required[Number]
    y: Required[Number]
    width: Required[Number]
    height: Required[Number]
    rectanglelabels: Required[Annotated[list[Text], AfterValidator(_one_known_label)]]
    rotation: Optional[Number]
    original_width: Optional[Pixels]   # JSON_MIN keeps the image size in the value
    original_height: Optional[Pixels]


class BoxResult(Record, total=False):
    type: Required[Text]
    from_name: Optional[Text]  # Label Studio writes it; nothing reads it, and hand-made exports lack it
    value: Required[RectangleValue]
    original_width: Optional[Pixels]
    original_height: Optional[Pixels]


class OtherResult(Record, total=False):
    """Choices, text areas, relations ...: not boxes, passed over (a relation has no value)."""
    type: Required[Text]
    from_name: Optional[Text]
    value: Optional[dict[str, Any]]


Result = Annotated[Union[Annotated[BoxResult, Tag(BOX)], Annotated[OtherResult, Tag(OTHER)]],
                   Discriminator(lambda r: BOX if isinstance(r, dict) and r.get("type") == BOX_TYPE else OTHER)]


class LabelStudioAnnotation(Record, total=False):
    was_cancelled: Optional[StrictBool]
    result: Optional[list[Result]]


class LabelStudioTask(Record, total=False):
    id: Optional[Int64]
    data: Required[dict[str, Any]]
    annotations: Optional[list[LabelStudioAnnotation]]


def is_box_list(value) -> bool:
    """A JSON_MIN control's results: a non-empty list of rectangle values."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and BOX_TYPE in v for v in value)


class JsonMinRecord(BaseModel):
    """One annotation of JSON_MIN: the task's data fields and each control's values at the top level."""
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Annotated[
        Union[Annotated[list[RectangleValue], Tag(BOXES)], Annotated[Any, Tag(DATA)]],
        Discriminator(lambda v: BOXES if is_box_list(v) else DATA)]] = Field(init=False)
    id: Optional[Int64] = None          # the task's
    annotation_id: Optional[Int64]      # null: exported unannotated
    was_cancelled: Optional[StrictBool] = None


# A selection's own files, as `taast export` reads them -------------------------------------------

class SelectionData(Record, total=False):
    image: Required[Text]
    image_id: Required[Text]


class Prediction(Record, total=False):
    result: Optional[list[Result]]


class SelectionTask(Record, total=False):
    data: Required[SelectionData]
    predictions: Optional[list[Prediction]]


class NamedCategory(Category, total=False):
    name: Required[Text]


class SelectionCategories(BaseModel):
    model_config = ConfigDict(extra="allow")
    categories: list[NamedCategory] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        _first_duplicate([c["id"] for c in self.categories], "categories", "category")
        return self


# The documents, and parse -----------------------------------------------------------------------

TAGS = frozenset({BOX, OTHER, BOXES, DATA})
LS_EXPORT = "a Label Studio export is a JSON list of tasks"
LABEL_DOCUMENT = Contract(TypeAdapter(LabelDocument), "missing the 'categories' list of a COCO/LVIS file",
                          collections={"categories": ("category", "id"), "images": ("image", "id"),
                                       "annotations": ("annotation", "id")})
LABEL_STUDIO_EXPORT = Contract(TypeAdapter(list[LabelStudioTask]), LS_EXPORT, ("task", "tasks", "id"), tags=TAGS)
JSON_MIN_EXPORT = Contract(TypeAdapter(list[JsonMinRecord]), LS_EXPORT, ("annotation", "records", "annotation_id"),
                           tags=TAGS)
SELECTION_TASKS = Contract(TypeAdapter(list[SelectionTask]), "not the Label Studio tasks a selection writes "
                           "(a JSON list of tasks)", ("task", "tasks", "id"), tags=TAGS)
SELECTION_CATEGORIES = Contract(TypeAdapter(SelectionCategories), "not a selection's pseudo labels (an object "
                                "with a 'categories' list)", collections={"categories": ("category", "id")})


def parse(contract: Contract, raw, source: str, context: dict | None = None):
    """``raw`` checked against ``contract``'s schema, or an InputError of one line naming ``source``
    and the record and field of its first defect. ``context`` reaches the validators
    (``category_names``: the labels a box may carry)."""
    try:
        with _collector_paused():
            return contract.adapter.validate_python(raw, context=context)
    except ValidationError as exc:
        raise InputError(describe(contract, raw, source, exc.errors(include_url=False)[0])) from None


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off while the checked copy is built: a 200k-annotation file
    makes about a million small acyclic objects, and the collections they set off (each walking
    every object alive, the parsed JSON too) added a quarter to the time (0.43 s against 0.35 s)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
