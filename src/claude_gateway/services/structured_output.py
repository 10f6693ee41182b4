"""Structured output: a JSON Schema the answer must match, checked before any agent starts.

The CLI validates the schema strictly (Ajv in strict mode: unknown keywords are errors)
and refuses to start otherwise; checking it here first turns that into a 400 that names
the problem, instead of a turn that fails after the process was spawned.
"""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from claude_gateway.errors import InvalidJsonSchema

KEYWORDS = frozenset({
    # core and applicator vocabularies (draft 2020-12, with draft-07's spellings)
    "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
    "$comment", "$defs", "definitions", "allOf", "anyOf", "oneOf", "not", "if", "then",
    "else", "dependentSchemas", "prefixItems", "items", "additionalItems", "contains",
    "properties", "patternProperties", "additionalProperties", "propertyNames",
    "unevaluatedItems", "unevaluatedProperties", "dependencies",
    # validation, format, content and meta-data
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties",
    "required", "dependentRequired", "format", "contentEncoding", "contentMediaType",
    "contentSchema", "title", "description", "default", "deprecated", "readOnly",
    "writeOnly", "examples",
})
_SCHEMA_MAPS = ("$defs", "definitions", "properties", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMAS = ("not", "if", "then", "else", "contains", "additionalProperties", "propertyNames",
            "unevaluatedItems", "unevaluatedProperties", "additionalItems", "contentSchema")


def unknown_keywords(schema: Any, where: str = "") -> list[str]:
    """Where keywords no JSON Schema vocabulary defines are used (the CLI refuses them)."""
    if not isinstance(schema, dict):
        return []
    found = [f"{where}/{key}" for key in schema if key not in KEYWORDS]
    for key in _SCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            for name, sub in schema[key].items():
                found += unknown_keywords(sub, f"{where}/{key}/{name}")
    for key in _SCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            for index, sub in enumerate(schema[key]):
                found += unknown_keywords(sub, f"{where}/{key}/{index}")
    for key in (*_SCHEMAS, "items"):
        found += unknown_keywords(schema.get(key), f"{where}/{key}")
    if isinstance(schema.get("items"), list):
        for index, sub in enumerate(schema["items"]):
            found += unknown_keywords(sub, f"{where}/items/{index}")
    return found


def check_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` if it is a JSON Schema the CLI will take; InvalidJsonSchema otherwise."""
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.absolute_path)
        raise InvalidJsonSchema(f"Not a valid JSON Schema at {where}: {exc.message}"[:500],
                                details={"at": where}) from None
    unknown = unknown_keywords(schema)
    if unknown:
        raise InvalidJsonSchema(f"Unknown JSON Schema keyword at {unknown[0]}"[:500],
                                details={"at": unknown[0]})
    return schema
