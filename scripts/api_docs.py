"""The tables of docs/api.md, generated from the portal's OpenAPI document so the two cannot drift.

    python -m scripts.api_docs          # rewrite the generated part of docs/api.md
    python -m scripts.api_docs --check  # exit 1 if docs/api.md differs from the document

The generated part lies between the ``api-tables:begin`` and ``api-tables:end`` comments; the rest of the
page is written by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "api.md"
BEGIN, END = "<!-- api-tables:begin (python -m scripts.api_docs) -->", "<!-- api-tables:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _type(schema: dict[str, Any]) -> str:
    if "const" in schema:
        return f"`{schema['const']!r}`".replace("'", '"')
    if "enum" in schema:
        return " or ".join(f'`"{v}"`' if isinstance(v, str) else f"`{v}`" for v in schema["enum"])
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(_type(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    kind = schema.get("type", "any")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_type(schema['items'])}"
    extra = [f"format {schema['format']}"] if "format" in schema else []
    extra += [f"pattern `{schema['pattern']}`"] if "pattern" in schema else []
    extra += [f"{schema['minimum']}–{schema.get('maximum', '')}"] if "minimum" in schema else []
    extra += [f"at most {schema['maxLength']} characters"] if "maxLength" in schema else []
    return kind + (f" ({', '.join(extra)})" if extra else "")


def _body_keys(schema: dict[str, Any]) -> str:
    properties = schema.get("properties", {})
    if not properties:
        return "none"
    required = set(schema.get("required", []))
    for alternative in schema.get("oneOf", []):
        required |= set(alternative.get("required", [])) - {k for k, v in properties.items() if v.get("deprecated")}
    keys = []
    for name, value in properties.items():
        mark = " (required)" if name in required else ""
        mark = " (deprecated)" if value.get("deprecated") else mark
        keys.append(f"`{name}`{mark}")
    return ", ".join(keys)


def endpoint_table(document: dict[str, Any]) -> list[str]:
    """One row per operation: method and path, what it does, the body keys and the answers."""
    lines = ["| method and path | what it does | bearer | body keys | answers |", "|---|---|---|---|---|"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            answers = ", ".join(f"`{code}` {_cell(r.get('description', ''))}"
                                for code, r in operation.get("responses", {}).items())
            lines.append(f"| `{method.upper()} {path}` | {_cell(operation.get('summary', ''))} | "
                         f"{'yes' if operation.get('security') else 'no'} | {_body_keys(body)} | {answers} |")
    return lines


def _rows(schema: dict[str, Any], prefix: str, components: dict[str, Any]) -> list[str]:
    rows = []
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    for name, value in schema.get("properties", {}).items():
        pointer = f"{prefix}/{name}"
        rows.append(f"| `{pointer}` | {'yes' if name in required else 'no'} | {_cell(_type(value))} | "
                    f"{_cell(value.get('description', ''))} |")
        if value.get("type") == "object" or "properties" in value:
            rows += _rows(value, pointer, components)
        elif value.get("type") == "array" and isinstance(value.get("items"), dict) and "properties" in value["items"]:
            rows += _rows(value["items"], f"{pointer}/0", components)
        for index, shape in enumerate(value.get("oneOf", [])):
            if "properties" in shape:
                rows.append(f"| `{pointer}` (shape {index + 1}) | | object | |")
                rows += _rows(shape, pointer, components)
    return rows


def schema_table(name: str, document: dict[str, Any]) -> list[str]:
    """Every property of one component schema, by JSON Pointer (as field errors name them)."""
    components = document["components"]["schemas"]
    return [f"#### {name}", "", "| property (JSON Pointer) | required | type | notes |", "|---|---|---|---|",
            *_rows(components[name], "", components)]


def generated() -> str:
    """The generated part of docs/api.md."""
    from portal.api.openapi import document

    doc = document("https://portal.example")
    lines = [BEGIN, "", f"### Endpoints (API version {doc['info']['version']})", "", *endpoint_table(doc), "",
             "### Application schemas", ""]
    for name in ("MoveApplication", "CertificateApplication", "DisclosureRequest", "CorrectionRequest",
                 "SuspensionRequest", "Withdrawal"):
        lines += [*schema_table(name, doc), ""]
    return "\n".join([*lines, END])


def render(page: str) -> str:
    """``page`` with its generated part replaced by the current one."""
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + generated() + tail


def main(argv: list[str] | None = None) -> int:
    """Rewrite docs/api.md, or with --check report whether it is current."""
    args = sys.argv[1:] if argv is None else argv
    page = PAGE.read_text(encoding="utf-8")
    if BEGIN not in page or END not in page:
        print(f"{PAGE}: the markers {BEGIN} and {END} are missing", file=sys.stderr)
        return 1
    current = render(page)
    if "--check" in args:
        if current != page:
            print(f"{PAGE} differs from the OpenAPI document: run python -m scripts.api_docs", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(current, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
