"""The base class of the project's own errors.

Every error the project raises on purpose derives from :class:`XemoGPTError` (and from the builtin it refines, so
``except ValueError`` still works): its message names the file, recipe key or sample and says what to do, so the
command line prints it as one ``error: ...`` line instead of a traceback (``XEMOGPT_DEBUG=1`` shows one).
"""

from __future__ import annotations


class XemoGPTError(Exception):
    """An error whose message is meant for the user as it is."""

    def __str__(self) -> str:  # KeyError subclasses would quote their message; show it as written
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class ComponentBuildError(XemoGPTError, ValueError):
    """A component could not be built from its recipe spec; the message starts with the recipe key."""


class NonFiniteLossError(XemoGPTError, RuntimeError):
    """A training loss was NaN or infinite. Carries where it happened and, once saved, the checkpoint from before.

    Attributes: stage, global_step, epoch, batch_idx, ids (sample ids of the batch, every rank's), losses (name ->
    value, as floats), checkpoint (path of the weights from before the step, set by
    :class:`~xemogpt.training.callbacks.NonFiniteGuard`). Raised by the model, handled by the training runner.
    """

    def __init__(self, stage: str, global_step: int, epoch: int, batch_idx: int, ids: list[str],
                 losses: dict[str, float]) -> None:
        self.stage, self.global_step, self.epoch, self.batch_idx = stage, global_step, epoch, batch_idx
        self.ids, self.losses = list(ids), dict(losses)
        self.checkpoint: str | None = None
        super().__init__(self._message())

    def _message(self) -> str:
        vals = ", ".join(f"{k}={v}" for k, v in self.losses.items())
        ids = ", ".join(self.ids[:32]) + (f" ... ({len(self.ids)} in all)" if len(self.ids) > 32 else "")
        where = (f"the weights from before this step are in {self.checkpoint}" if self.checkpoint
                 else "no checkpoint could be written")
        return (f"non-finite training loss in stage {self.stage!r} at global step {self.global_step} (epoch "
                f"{self.epoch}, batch {self.batch_idx}): {vals}; batch sample ids: {ids}. {where}. Lower the stage's "
                "lr, check these samples, or set trainer.gradient_clip_val, then resume with --resume.")

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):  # picklable across processes with its fields
        return (_rebuild_nonfinite, (self.stage, self.global_step, self.epoch, self.batch_idx, self.ids, self.losses,
                                     self.checkpoint))


def _rebuild_nonfinite(stage, step, epoch, batch_idx, ids, losses, checkpoint) -> NonFiniteLossError:
    e = NonFiniteLossError(stage, step, epoch, batch_idx, ids, losses)
    e.checkpoint = checkpoint
    return e
