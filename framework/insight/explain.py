"""``tlf explain``'s work: a run's model, its eval preprocessing and Grad-CAM overlays per image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.model_input import to_model_input
from ..data.reading import read_rgb
from ..data.run_data import pipeline_for
from ..engine.placement import place
from ..errors import TlfError
from ..models.trained import load_run
from ..plots.png import pyplot, save_figure
from ..registry import get_registry
from ..task import TaskRequest
from ..task_outputs import output_of, probabilities
from .gradcam import grad_cam, overlay


class Explainer:
    """Grad-CAM of a run's model for image files, drawn as image | predicted class | chosen class."""

    def __init__(self, run_dir: str | Path, checkpoint: str = "best", device: str = "cpu",
                 target: str | None = None) -> None:
        self.run = load_run(run_dir, checkpoint)
        if target is not None and target not in self.run.classes:
            raise TlfError(f"class {target!r} is not one of the run's classes",
                           hint=f"choose one of: {', '.join(self.run.classes)}")
        self.target = target
        task = get_registry().create("tasks", self.run.config.task or "single-label", TaskRequest(self.run.classes))
        self.output = output_of({"output": task.activation}, f"task {task.name!r}")
        self.pipeline = pipeline_for(self.run.config, self.run.preprocessing, len(self.run.classes), augment="none")
        self.device = place(device, "fp32").device
        self.model = self.run.model.to(self.device)
        self._used: set[str] = set()

    def _input(self, view: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(np.ascontiguousarray(view[None])).permute(0, 3, 1, 2)
        return to_model_input(batch, self.run.preprocessing.mean, self.run.preprocessing.std, self.device, channels_last=False)

    def _name(self, path: Path) -> str:
        name, n = f"{path.stem}.gradcam.png", 1
        while name in self._used:
            n += 1
            name = f"{path.stem}-{n}.gradcam.png"
        self._used.add(name)
        return name

    def explain(self, path: str | Path, out: Path) -> dict:
        """Write the overlay of one image into ``out``; the row ``tlf explain`` prints.
        An unreadable file raises :class:`tlf.data.reading.UnreadableImage`."""
        path = Path(path)
        view = self.pipeline.eval_transform(read_rgb(path), None)
        x = self._input(view)
        cam, logits = grad_cam(self.model, x)
        probs = probabilities(self.output, logits.numpy())[0]  # sigmoid outputs (multi-label): each class's
        predicted = int(probs.argmax())
        panels = [("input", view), (f"predicted: {self.run.classes[predicted]} {probs[predicted]:.0%}",
                                    overlay(view, cam[0]))]
        row = {"path": str(path), "predicted": self.run.classes[predicted], "probability": float(probs[predicted])}
        if self.target is not None:
            t = self.run.classes.index(self.target)
            chosen, _ = grad_cam(self.model, x, torch.tensor([t]))
            panels.append((f"class: {self.target} {probs[t]:.0%}", overlay(view, chosen[0])))
            row["class_probability"] = float(probs[t])
        plt = pyplot()
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.5))
        for ax, (title, picture) in zip(axes, panels):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(f"{path.name} · Grad-CAM on conv5 of {self.run.config.backbone}", fontsize=9)
        target_path = out / self._name(path)
        save_figure(fig, target_path)
        plt.close(fig)
        row["output"] = str(target_path)
        return row
