"""The top of the README as a new user reads it: the quick test command, both torch install lines
and how long each command takes; and the docs' note on Gymnasium's RecordVideo."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_top() -> str:
    """The README up to its first section: the two commands and the paragraphs after them."""
    return (REPO / "README.md").read_text().split("\n## ", 1)[0]


def commands() -> list[str]:
    return re.findall(r"```bash\n(.*?)\n```", readme_top(), re.S)


def test_the_readme_test_command_is_the_quick_part_and_ci_runs_every_test():
    first, second = commands()[:2]
    assert "pip install torch==2.13.0 &&" in first and first.endswith("yume-env record --out episode.mp4")
    assert second.endswith('python -m pytest -q -m "not slow"')
    ci = (REPO / ".ci" / "run").read_text()
    assert (
        'python -m pytest -q -m "not slow" --durations=15' in ci and "python -m pytest -q -m slow --durations=15" in ci
    )


def test_the_readme_gives_the_cpu_index_line_and_the_plain_line_for_a_gpu():
    lines = "\n".join(commands()[2:])
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in lines
    assert re.search(r"^pip install torch==2\.13\.0 +# .*GPU", lines, re.M)


def test_the_readme_says_how_long_each_command_takes_on_2_cores():
    text = " ".join(readme_top().split())
    assert len(re.findall(r"about [0-9.]+ (?:s|min|minutes?) on 2 (?:CPU )?cores", text)) >= 3, text


def test_the_docs_say_record_video_needs_moviepy_and_point_to_record_episode():
    recording = (REPO / "docs" / "env.md").read_text().split("## Recording", 1)[1].split("\n## ", 1)[0]
    assert "RecordVideo" in recording and "moviepy" in recording and "RecordEpisode" in recording
    assert "yume-env record" in recording
