"""The documentation keeps up with the code: every link resolves, every variable is documented."""

from __future__ import annotations

import ast
import re
from collections import Counter
from enum import Enum
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydantic import SecretStr

from tests.settings_env import env_names, setting_env_names, settings_models

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
CONFIGURATION = DOCS / "configuration.md"
DOCUMENTS = (README, *sorted(DOCS.glob("*.md")), REPO / "deploy" / "README.md")
# Sources that read variables of their own, beside the settings models: the command line, the benchmarks.
COMMAND_PACKAGES = ("tierflow", "bench")
# The issue that made the README a front door set this bound; the detail lives in docs/.
README_LIMIT_BYTES = 16_000

FENCED_BLOCK = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
URL_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")
VARIABLE = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def prose(document: Path) -> str:
    """The text links and headings live in: fenced blocks out, code spans blanked."""
    return CODE_SPAN.sub("code", FENCED_BLOCK.sub("", document.read_text()))


def anchors(document: Path) -> set[str]:
    """The fragments a renderer gives the document's headings, as GitHub spells them."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for heading in HEADING.findall(FENCED_BLOCK.sub("", document.read_text())):
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
        slug = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
        found.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return found


def relative_links(document: Path) -> list[str]:
    return [target for target in LINK.findall(prose(document)) if not URL_SCHEME.match(target)]


def broken(document: Path, target: str) -> str | None:
    path, _, fragment = target.partition("#")
    resolved = (document.parent / unquote(path)).resolve() if path else document
    if not resolved.exists():
        return (
            f"{target}: no file {resolved.relative_to(REPO) if resolved.is_relative_to(REPO) else resolved}"
        )
    if fragment and (resolved.suffix != ".md" or fragment not in anchors(resolved)):
        return f"{target}: no heading #{fragment} in {resolved.relative_to(REPO)}"
    return None


def configuration_rows() -> dict[str, list[str]]:
    """Each variable named in the first column of a table on the configuration page, with its row."""
    rows: dict[str, list[str]] = {}
    for line in CONFIGURATION.read_text().splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows.update(dict.fromkeys(VARIABLE.findall(cells[0]), cells))
    return rows


def command_env_names() -> set[str]:
    """Variables the command line and the benchmarks read straight from the environment."""
    names: set[str] = set()
    for path in (path for package in COMMAND_PACKAGES for path in (REPO / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
            ):
                source, key = node.func.value, node.args[0] if node.args else None
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
                source, key = node.value, node.slice
            else:
                continue
            reads_environment = ast.unparse(source).endswith(("environ", ".env"))
            if reads_environment and isinstance(key, ast.Constant) and isinstance(key.value, str):
                names.add(key.value)
    return names


def documented_default(value: object) -> str | None:
    """How the configuration page writes a default; None for defaults it describes in words."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value or "empty"
    return None


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_and_heading_that_exist(document: Path) -> None:
    problems = [problem for target in relative_links(document) if (problem := broken(document, target))]
    assert not problems, "\n".join(problems)


def test_a_link_to_a_missing_heading_is_caught() -> None:
    assert broken(README, "docs/scoring.md#how-scoring-decides") is None
    assert broken(README, "docs/scoring.md#no-such-heading") is not None
    assert broken(README, "docs/no-such-page.md") is not None


def test_the_readme_links_every_page_of_the_documentation() -> None:
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in relative_links(README)}
    assert [page.name for page in sorted(DOCS.glob("*.md")) if page not in linked] == []


def test_the_readme_stays_a_front_door() -> None:
    assert len(README.read_bytes()) < README_LIMIT_BYTES


def test_every_setting_is_on_the_configuration_page() -> None:
    missing = sorted(setting_env_names() - configuration_rows().keys())
    assert not missing, f"document in {CONFIGURATION.relative_to(REPO)}: {', '.join(missing)}"


def test_every_variable_the_command_line_reads_is_on_the_configuration_page() -> None:
    missing = sorted(command_env_names() - configuration_rows().keys())
    assert not missing, f"document in {CONFIGURATION.relative_to(REPO)}: {', '.join(missing)}"


def test_the_configuration_page_lists_only_variables_tierflow_reads() -> None:
    stale = sorted(configuration_rows().keys() - setting_env_names() - command_env_names())
    assert not stale, f"nothing reads {', '.join(stale)}"


def test_the_configuration_page_gives_each_settings_default() -> None:
    rows = configuration_rows()
    wrong: list[str] = []
    for model in settings_models():
        for name, field_name in env_names(model).items():
            expected = documented_default(model.model_fields[field_name].default)
            if name not in rows or expected is None:
                continue  # an undocumented variable fails its own test
            default_cell = rows[name][1]
            if not re.search(rf"(?<![\w.]){re.escape(expected)}(?![\w.])", default_cell):
                wrong.append(f"{name}: the code says {expected}, the page {default_cell!r}")
    assert not wrong, "\n".join(wrong)
