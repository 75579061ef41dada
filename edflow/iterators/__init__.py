from edflow.iterators.template_iterator import EvaluationError, NonFiniteLossError, TemplateIterator

__all__ = ["TemplateIterator", "NonFiniteLossError", "EvaluationError"]
