"""The playbook library: YAML playbooks from `playbooks/` and runbooks from the docs repository.

Loading validates everything up front; an invalid file is an error that names the file and
the field, never a playbook silently skipped.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from argus.models import Playbook


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
    for step in pb.steps:
        for spec in (step.run, step.rollback):
            if spec is None:
                continue
            for value in spec.args.values():
                for name in _placeholders(str(value)):
                    if name not in pb.parameters:
                        raise PlaybookError(
                            f"{path}: step {step.name!r} uses parameter {{{{ {name} }}}} that is not declared"
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
