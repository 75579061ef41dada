"""edflow 0.4's ``Hook``: a hook appended to ``iterator.hooks`` is called every ``hook_freq`` training steps with
``before_step(step, fetches, feeds, batch)`` and ``after_step(step, last_results)`` (``step`` is the global step,
``last_results`` ``{"global_step": step}``) and with ``after_epoch(epoch)``; ``before_epoch`` and ``at_exception``
exist for subclasses written for edflow but are not called. Hooks that are not subclasses of ``Hook`` get the
iterator instead (``after_step(iterator)``, ``after_epoch(iterator)``), the runner's own protocol."""


class Hook:
    def before_epoch(self, epoch):
        pass

    def before_step(self, step, fetches, feeds, batch):
        pass

    def after_step(self, step, last_results):
        pass

    def after_epoch(self, epoch):
        pass

    def at_exception(self, exception):
        pass
