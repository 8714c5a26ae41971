"""The README's Python API example runs as written."""

import re
from pathlib import Path

import numpy as np

from videop2p.io.writing import write_frames
from videop2p.toy.world import Color, Shape, ToyClipSpec, ToyObject, render_clip

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs_and_edits_the_clip(tmp_path, monkeypatch):
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    clip = render_clip(ToyClipSpec([ToyObject(Shape.CIRCLE, Color.RED)], frames=8, size=64, seed=0))
    write_frames(clip.frames, tmp_path / "videop2p-demo" / "clip")
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    edit = scope["out"].edits[0]
    assert edit.shape == clip.frames.shape and edit.dtype == np.uint8
    assert scope["tuned"].action == "computed" and scope["edited"].unet_evaluations > 0
    from videop2p import read_video

    assert read_video(tmp_path / "blue.mp4").frames.shape == edit.shape  # written where the example says


def test_the_readme_config_example_is_read_and_checked(tmp_path):
    from videop2p.config import load_config, validate

    text = re.search(r"### Configuration files\n.*?```yaml\n(.*?)```", README.read_text(), re.S).group(1)
    (tmp_path / "run.yaml").write_text(text)
    cfg = load_config([tmp_path / "run.yaml"])
    validate(cfg)
    assert len(cfg.targets) == 2 and cfg.edit.blend == [("rabbit", "rabbit"), ("grass", "snow")]
    assert cfg.edit.reweight == {"origami": 2.0} and cfg.video.frames == 8
