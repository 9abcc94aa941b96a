#!/usr/bin/env python3
"""Writes the book's inventory reference (docs/src/inventory-schema.md) from the
inventory's JSON Schema (`dbfleet schema`, the same types that load an inventory).

    dbfleet schema | python3 docs/schema-reference.py > docs/src/inventory-schema.md

CI runs it and fails when the committed page differs (.ci/run)."""
import json
import sys


def type_of(s):
    """A short type for the table: a definition's name links to its section."""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in s or "oneOf" in s:
        parts = [type_of(x) for x in s.get("anyOf", s.get("oneOf"))]
        parts = [p for p in parts if p != "null"]
        return " or ".join(parts) + (" (optional)" if len(parts) < len(s.get("anyOf", s.get("oneOf"))) else "")
    if "enum" in s:
        values = [v for v in s["enum"] if v is not None]
        optional = " (optional)" if len(values) < len(s["enum"]) else ""
        return " \\| ".join(f"`{v}`" for v in values) + optional
    if "const" in s:
        return f"`{s['const']}`"
    t = s.get("type")
    if isinstance(t, list):
        return " or ".join(x for x in t if x != "null") + (" (optional)" if "null" in t else "")
    if t == "array":
        return "list of " + type_of(s.get("items", {}))
    if t == "object" and isinstance(s.get("additionalProperties"), dict):
        return "map of name → " + type_of(s["additionalProperties"])
    return t or "any"


def one_line(text):
    return " ".join((text or "").split()).replace("|", "\\|")


def table(schema):
    props = schema.get("properties", {})
    if not props:
        return ""
    required = set(schema.get("required", []))
    rows = ["| key | type | required | what |", "| --- | --- | --- | --- |"]
    for k, v in props.items():
        rows.append(
            f"| `{k}` | {type_of(v)} | {'yes' if k in required else ''} | {one_line(v.get('description'))} |"
        )
    return "\n".join(rows) + "\n"


def main():
    d = json.load(sys.stdin)
    out = [
        "# Inventory schema",
        "",
        "Generated from `dbfleet schema` (the JSON Schema of the types that load an",
        "inventory) by `docs/schema-reference.py`; do not edit by hand. Editors with",
        "yaml-language-server check an inventory against the schema itself: put",
        "`# yaml-language-server: $schema=dbfleet.schema.json` (a path or URL to",
        "`dbfleet schema`'s output) on the inventory's first line.",
        "",
        "## Inventory",
        "",
        one_line(d.get("description")),
        "",
        table(d),
    ]
    for name, s in sorted(d.get("definitions", {}).items()):
        out += [f"## {name}", ""]
        if s.get("description"):
            out += [one_line(s["description"]), ""]
        t = table(s)
        if t:
            out.append(t)
        elif "enum" in s or "oneOf" in s or "anyOf" in s:
            out += [f"One of: {type_of(s)}", ""]
        else:
            out += [f"Type: {type_of(s)}", ""]
    sys.stdout.write("\n".join(out).rstrip("\n") + "\n")


main()
