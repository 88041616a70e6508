"""The published JSON schema accepts the token-law shorthand the loader accepts (``max_tokens: 64``)."""

from __future__ import annotations

import jsonschema
import pytest

from mlchaos.load.llmspec import LLMSpec


@pytest.mark.parametrize("doc", [
    {"max_tokens": 64, "prompts": {"generate": {"tokens": 100}}},
    {"max_tokens": {"dist": "uniform", "min": 8, "max": 64}},
])
def test_schema_and_loader_agree_on_accepted_laws(doc: dict) -> None:
    jsonschema.validate(doc, LLMSpec.model_json_schema())
    LLMSpec.model_validate(doc)


@pytest.mark.parametrize("doc", [{"max_tokens": 0}, {"max_tokens": {"dist": "fixed", "value": 0}},
                                 {"max_tokens": "64"}])
def test_schema_and_loader_agree_on_refused_laws(doc: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, LLMSpec.model_json_schema())
    with pytest.raises(ValueError):
        LLMSpec.model_validate(doc)
