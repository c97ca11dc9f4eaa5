"""The environment variables TierFlow's settings models read, derived from the models themselves."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "services", "tierflow")


def settings_models() -> list[type[BaseSettings]]:
    """Every settings model in TierFlow's packages, found in the source so that a new one counts too."""
    models: list[type[BaseSettings]] = []
    for path in sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py")):
        candidates = [
            node.name
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.ClassDef) and any("Settings" in ast.unparse(base) for base in node.bases)
        ]
        if candidates:
            module = importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
            found = (getattr(module, name) for name in candidates)
            models.extend(model for model in found if issubclass(model, BaseSettings))
    return models


def env_names(model: type[BaseSettings]) -> dict[str, str]:
    """Each environment variable the model reads, with the field it sets.

    A field with an alias answers to its aliases only; the others to the prefix plus their name.
    """
    prefix = model.model_config.get("env_prefix", "")
    exact = model.model_config.get("case_sensitive", False)
    names: dict[str, str] = {}
    for field_name, field in model.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, AliasChoices):
            choices = [choice for choice in alias.choices if isinstance(choice, str)]
        elif isinstance(alias, str):
            choices = [alias]
        else:
            choices = [f"{prefix}{field_name}"]
        names.update({choice if exact else choice.upper(): field_name for choice in choices})
    return names


def setting_env_names() -> set[str]:
    """Every environment variable any TierFlow settings model reads."""
    return {name for model in settings_models() for name in env_names(model)}
