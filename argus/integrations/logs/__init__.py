"""Log lines into templates (drain3) and template-level comparisons of log windows."""

from .templates import LogTemplateMiner, TemplateCount, new_templates

__all__ = ["LogTemplateMiner", "TemplateCount", "new_templates"]
