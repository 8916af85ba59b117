"""The loop's own errors, as one line with the way out: CUDA out of memory, a non-finite loss."""
from __future__ import annotations

from typing import Any

from ..errors import TlfError


def out_of_memory(loop: Any) -> TlfError:
    """CUDA ran out of memory in ``loop``'s epoch: a smaller batch, bf16, a smaller image."""
    size = loop.config.batch_size
    resume = f", then resume with --resume {loop.run_dir.path}" if loop.run_dir and loop.history else ""
    return TlfError(f"CUDA ran out of memory at batch size {size} ({loop.placement.precision}, "
                    f"{loop.config.image_size} px)",
                    hint=f"try --batch-size {max(1, size // 2)}, --precision bf16 or a smaller --image-size{resume}")


def nonfinite_loss(epoch: int) -> TlfError:
    """The training loss became NaN/inf in ``epoch`` (0-based)."""
    return TlfError(f"the training loss became NaN/inf in epoch {epoch + 1}",
                    hint="lower --lr, set --grad-clip 1.0, or use --precision fp32; the last good checkpoint is kept")
