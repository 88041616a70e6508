"""Pydantic field types backed by :mod:`mlchaos.spec.units` (parse once, in one place)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, WithJsonSchema

from mlchaos.spec import units

_num_or_str = {"anyOf": [{"type": "number"}, {"type": "string"}]}

Duration = Annotated[
    float,
    BeforeValidator(units.parse_duration),
    WithJsonSchema({**_num_or_str, "description": "Duration: '250ms', '2m', '1m30s' or seconds"}),
]
Rate = Annotated[
    float,
    BeforeValidator(units.parse_rate),
    WithJsonSchema({**_num_or_str, "description": "Rate: '300/s', '1200/m' or per second"}),
]
Percent = Annotated[
    float,
    BeforeValidator(units.parse_percent),
    WithJsonSchema({**_num_or_str, "description": "Percentage: '10%' or a fraction in [0, 1]"}),
]
Size = Annotated[
    int,
    BeforeValidator(units.parse_size),
    WithJsonSchema({**_num_or_str, "description": "Size: '64MiB', '10MB' or bytes"}),
]
Quantity = Annotated[
    float,
    BeforeValidator(units.parse_quantity),
    WithJsonSchema({**_num_or_str, "description": "Number, or with a unit: '100ms', '1%', '1MiB'"}),
]
PositiveInt = Annotated[int, Field(ge=1)]
