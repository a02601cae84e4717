"""The playbook library: YAML playbooks from `playbooks/` and runbooks from the docs repository.

Loading validates everything up front; an invalid file is an error that names the file and
the field, never a playbook silently skipped.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from argus.models import ActionType, Playbook


class PlaybookError(ValueError):
    pass


def _format_validation(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        lines.append(f"{path}: field {loc}: {err['msg']}")
    return "\n".join(lines)


def load_playbook(path: Path) -> Playbook:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PlaybookError(f"{path}: a playbook must be a mapping with name, steps, ...")
    try:
        pb = Playbook.model_validate({**data, "source": str(path)})
    except ValidationError as exc:
        raise PlaybookError(_format_validation(path, exc)) from exc
    for name, spec in pb.parameters.items():
        if spec.default is not None:
            try:
                spec.coerce(name, spec.default)
            except ValueError as exc:
                raise PlaybookError(f"{path}: field parameters.{name}.default: {exc}") from exc
    for step in pb.steps:
        for role, spec in (("run", step.run), ("rollback", step.rollback)):
            if spec is None:
                continue
            for arg, value in spec.args.items():
                for name in _placeholders(str(value)):
                    if name not in pb.parameters:
                        raise PlaybookError(
                            f"{path}: field steps.{step.name}.{role}.args.{arg}: parameter "
                            f"{{{{ {name} }}}} is not declared under parameters"
                        )
                    p = pb.parameters[name]
                    # A free-form string must never reach a command line or a URL: its values may come
                    # from alert labels, so it needs a pattern or a fixed set of choices.
                    if spec.type in (ActionType.SHELL, ActionType.HTTP) and p.type == "string":
                        if not p.pattern and not p.choices:
                            raise PlaybookError(
                                f"{path}: field parameters.{name}: a string used by a {spec.type.value} step "
                                f"({step.name}) needs a pattern or choices"
                            )
    return pb


def _placeholders(text: str) -> list[str]:
    import re

    return re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", text)


def load_playbooks(directory: Path) -> list[Playbook]:
    if not directory.exists():
        return []
    books = [load_playbook(p) for p in sorted(directory.glob("*.y*ml"))]
    names = [b.name for b in books]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise PlaybookError(f"{directory}: duplicate playbook names {sorted(dupes)}")
    return books


def fill(value: object, params: dict[str, object]) -> object:
    """Substitute `{{ param }}` with typed parameter values; nothing else is interpreted."""
    if isinstance(value, str):
        import re

        def sub(m: re.Match[str]) -> str:
            return str(params[m.group(1)])

        whole = re.fullmatch(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", value)
        if whole:
            return params[whole.group(1)]
        return re.sub(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", sub, value)
    if isinstance(value, list):
        return [fill(v, params) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, params) for k, v in value.items()}
    return value
