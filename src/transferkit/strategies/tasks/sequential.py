"""Sequential fine-tuning: the catastrophic-forgetting baseline of continual learning."""
from __future__ import annotations

from ..registry import register_strategy
from .sequence import MultiHeadNet, TaskSequenceStrategy


@register_strategy
class SequentialFineTune(TaskSequenceStrategy):
    """Fine-tune one shared backbone on each task in turn, with a new head per task (no protection).

    The catastrophic-forgetting baseline of continual learning (McCloskey & Cohen 1989; Goodfellow et al.
    2013): the backbone drifts toward the latest task, so earlier tasks' accuracy falls. The task id routes
    inference to that task's head; heads of earlier tasks are not trained again.

    Inputs: ``tasks`` (list of ImageDatasets), optional ``eval_tasks``. Images (B, C, H, W) in [0, 1] ->
    logits (B, n_classes of the task).

    Example:
        >>> from transferkit.data import task_sequence
        >>> ft = SequentialFineTune(backbone="builtin:small-cnn", epochs=2).fit(task_sequence(train, 5),
        ...                                                                    eval_tasks=task_sequence(test, 5))
        >>> ft.accuracy_matrix_, ft.continual_metrics_["forgetting"]
    """

    name = "sequential-finetune"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def _new_model(self):
        return MultiHeadNet(self.backbone_)

    def _begin_task(self, k, data):
        self.model_.add_head(len(self.task_classes_[k]))

    def _end_task(self, k, data, restoring: bool = False):
        pass

    def _trainable(self):
        return [*self.model_.backbone.parameters(), *self.model_.heads[self.current_task_].parameters()]

    def task_logits(self, x, task: int):
        return self.model_(x, task)
