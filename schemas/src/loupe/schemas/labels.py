"""Label payloads for the three task types: classification, bounding boxes and video tracks."""

from __future__ import annotations

from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from loupe.schemas._base import ClassName, Contract, FiniteFloat, Identifier, Score

MAX_CLASSES = 1_000
MAX_BOXES = 1_000
MAX_FRAMES = 10_000
MAX_BOXES_PER_FRAME = 200
_EDGE_TOLERANCE = 1e-6


class TaskType(StrEnum):
    """The kinds of work Loupe routes and reviews."""

    CLASSIFICATION = "classification"
    BBOX = "bbox"
    TRACK = "track"


class ClassificationLabel(Contract):
    """A single class, optionally with the model's per-class scores."""

    kind: Literal["classification"] = "classification"
    label: ClassName
    scores: Annotated[dict[ClassName, Score], Field(max_length=MAX_CLASSES)] = Field(
        default_factory=dict
    )

    @model_validator(mode="after")
    def _label_is_scored(self) -> Self:
        if self.scores and self.label not in self.scores:
            raise ValueError(f"label {self.label!r} has no entry in scores")
        return self


class ImageSize(Contract):
    """Pixel dimensions of the image or video frame the boxes refer to."""

    width: int = Field(gt=0, le=100_000)
    height: int = Field(gt=0, le=100_000)


class Units(StrEnum):
    """Box coordinate units: pixels, or fractions of the image size."""

    PIXEL = "pixel"
    NORMALIZED = "normalized"


class Box(Contract):
    """An axis-aligned box: top-left corner (x, y), width and height."""

    label: ClassName
    score: Score | None = None
    x: FiniteFloat = Field(ge=0.0)
    y: FiniteFloat = Field(ge=0.0)
    w: FiniteFloat = Field(gt=0.0)
    h: FiniteFloat = Field(gt=0.0)


class TrackedBox(Box):
    """A box that belongs to an object track."""

    track_id: Identifier


def _check_inside(
    boxes: list[Box] | list[TrackedBox], image: ImageSize, units: Units, where: str
) -> None:
    max_x, max_y = (1.0, 1.0) if units is Units.NORMALIZED else (image.width, image.height)
    for index, box in enumerate(boxes):
        if box.x + box.w > max_x + _EDGE_TOLERANCE or box.y + box.h > max_y + _EDGE_TOLERANCE:
            raise ValueError(
                f"{where}box {index} ({box.x}, {box.y}, {box.w}, {box.h}) lies outside the "
                f"{units.value} image bounds {max_x} x {max_y}"
            )


class BoxesLabel(Contract):
    """Object detection boxes on one image."""

    kind: Literal["bbox"] = "bbox"
    image: ImageSize
    units: Units = Units.PIXEL
    boxes: Annotated[list[Box], Field(max_length=MAX_BOXES)]

    @model_validator(mode="after")
    def _boxes_inside_image(self) -> Self:
        _check_inside(self.boxes, self.image, self.units, "")
        return self


class TrackFrame(Contract):
    """The tracked boxes visible on one video frame."""

    frame: int = Field(ge=0)
    boxes: Annotated[list[TrackedBox], Field(max_length=MAX_BOXES_PER_FRAME)]

    @model_validator(mode="after")
    def _unique_tracks(self) -> Self:
        ids = [box.track_id for box in self.boxes]
        if len(ids) != len(set(ids)):
            raise ValueError(f"frame {self.frame} has the same track_id twice")
        return self


class TracksLabel(Contract):
    """Object tracks across video frames: per-frame boxes with stable track ids."""

    kind: Literal["track"] = "track"
    image: ImageSize
    units: Units = Units.PIXEL
    frames: Annotated[list[TrackFrame], Field(max_length=MAX_FRAMES)]

    @model_validator(mode="after")
    def _frames_ordered_and_inside(self) -> Self:
        numbers = [frame.frame for frame in self.frames]
        if any(b <= a for a, b in pairwise(numbers)):
            raise ValueError("frames must be in strictly increasing frame order")
        for frame in self.frames:
            _check_inside(frame.boxes, self.image, self.units, f"frame {frame.frame} ")
        return self


Label = Annotated[ClassificationLabel | BoxesLabel | TracksLabel, Field(discriminator="kind")]
"""Any label payload, told apart by its ``kind`` (equal to the task type)."""


def label_classes(label: ClassificationLabel | BoxesLabel | TracksLabel) -> set[str]:
    """Every class name a label uses."""
    if isinstance(label, ClassificationLabel):
        return {label.label}
    if isinstance(label, BoxesLabel):
        return {box.label for box in label.boxes}
    return {box.label for frame in label.frames for box in frame.boxes}
