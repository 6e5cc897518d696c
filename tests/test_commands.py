"""Every command the README and the dashboard show a user runs as shown.

The README's command-line block and Python API block, and the commands on the dashboard's home page, are read from
their text and run in a sandbox that looks like a fresh project folder: ``data/`` holds a tiny synthetic data set
(in place of the user's), ``my_images/`` and ``more/`` a few images, and ``checkpoints/`` starts empty. Only the
placeholders are filled in: ``runs/<name>`` becomes the run the first ``train`` made, ``my_data`` the data folder.
A command that fails, or a flag that no longer exists, fails here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import make_tiny

from galaxy_core import catalog, cli, prediction

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "python -m galaxy_core "


def readme_block(heading: str, language: str) -> str:
    """The first ``language`` code block after the line ``heading`` in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text[text.index(f"\n{heading}\n"):]
    return re.search(rf"```{language}\n(.*?)```", after, re.S).group(1)


def readme_commands() -> list[list[str]]:
    lines = readme_block("## Command line", "bash").splitlines()
    return [shlex.split(line[len(PROGRAM):], comments=True) for line in lines if line.startswith(PROGRAM)]


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    make_tiny(tmp_path / "data", n_labelled=24, n_unlabelled=6, size=96)
    for folder in ("my_images", "more/images_test_rev1"):
        (tmp_path / folder).mkdir(parents=True)
        for image in sorted((tmp_path / "data" / catalog.UNLABELLED_DIR).iterdir()):
            shutil.copy(image, tmp_path / folder / image.name)
    for folder in ("my_images", "more"):
        shutil.copy(tmp_path / "data" / catalog.FOLDER_CONFIG, tmp_path / folder / catalog.FOLDER_CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prediction, "CHECKPOINTS", tmp_path / "checkpoints")
    return tmp_path


def run_all(commands: list[list[str]], capsys) -> list[str]:
    """Run each command in order with ``runs/<name>`` filled in; returns their outputs."""
    outputs, run = [], None
    for argv in commands:
        if any("<name>" in a for a in argv):
            assert run is not None, f"{argv} names a run before any train command made one"
            argv = [a.replace("<name>", run) for a in argv]
        code = cli.main(argv)
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err[-2000:])
        outputs.append(captured.out)
        if argv[0] == "train" and run is None:
            run = sorted(p.name for p in Path("runs").iterdir())[0]
    return outputs


@pytest.mark.slow
def test_the_readme_command_line_runs_as_shown(sandbox, capsys):
    commands = readme_commands()
    assert [c[0] for c in commands][:4] == ["summary", "prepare", "models", "train"]
    outputs = run_all(commands, capsys)
    assert (sandbox / "checkpoints" / "default" / "model.safetensors").is_file()  # export
    assert (sandbox / "answers.csv").is_file()  # predict
    assert "galaxynet" in outputs[[c[0] for c in commands].index("runs")]
    assert (sandbox / "data" / "demo" / "training_solutions_rev1.csv").is_file()


@pytest.mark.slow
def test_the_readme_python_api_runs_as_shown(sandbox):
    code = readme_block("The same functions are the Python API:", "python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["ev"].rmse() > 0 and len(namespace["frame"]) == 6
    assert (sandbox / "answers.csv").is_file()


@pytest.mark.slow
def test_the_home_pages_commands_run_as_shown(sandbox, capsys):
    text = (ROOT / "app.py").read_text(encoding="utf-8")
    shown = re.findall(r"`python -m galaxy_core ([^`]+)`", text)
    assert [c.split()[0] for c in shown] == ["summary", "prepare", "train"]
    run_all([shlex.split(c.replace("my_data", "data")) for c in shown], capsys)


def test_the_readme_checkpoint_conversion_runs_as_shown(sandbox, capsys):
    # The Reliability section's way from a pickled state dict one trusts to a checkpoint this project loads.
    import torch

    from galaxy_core import models

    torch.save(models.build_model("galaxynet").state_dict(), sandbox / "weights.pt")
    code = readme_block("## Reliability", "python")
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    loaded = models.load_model_folder(sandbox / "my_model")
    assert loaded.config["name"] == "galaxynet"
    shown = re.search(r"# then: python -m galaxy_core (.+)", code).group(1)
    argv = shlex.split(shown.replace("IMAGES", "my_images")) + ["--out", "converted.csv"]
    assert cli.main(argv) == 0, capsys.readouterr().err[-2000:]
    assert (sandbox / "converted.csv").is_file()
