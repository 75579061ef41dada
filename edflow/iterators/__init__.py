from edflow.iterators.template_iterator import NonFiniteLossError, TemplateIterator

__all__ = ["TemplateIterator", "NonFiniteLossError"]
