"""Every command the README, the docs and the dashboard show a user runs as shown.

The README's command-line block and Python API block, and the commands on the dashboard's home page, are read from their
text and run in a sandbox that looks like a fresh clone: ``data/`` holds only its README, so the commands fall back to
the built-in demo (made on first use, as on a fresh clone, but small: 24 labelled galaxies at 96 px), and
``checkpoints/default`` is the shipped model. Only the placeholders, which the README writes in angle brackets, are
filled in: ``runs/<name>`` becomes the run the first ``train`` made, ``<images>`` the demo's unlabelled images,
``<labelled-data>`` the demo, ``<labels.csv>`` four marked demo galaxies. Every other command printed in the README or
``docs/`` must at least parse: a flag that no longer exists fails here.

The README's command line is run once for the module (``readme_run``): its first commands are the home page's, and
the home page's test reads their results there rather than training the same model a second time.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from galaxy_core import cli
from galaxy_core.demo import demo_set
from galaxy_core.predict import modelchoice

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = "python -m galaxy_core "
PLACEHOLDERS = {"<images>": "data/demo/images_test_rev1", "<labelled-data>": "data/demo", "<labels.csv>": "labels.csv",
                "<question>": "rings"}


def block(heading: str, language: str, page: str = "README.md") -> str:
    """The first ``language`` code block after the line ``heading`` in ``page``."""
    text = (ROOT / page).read_text(encoding="utf-8")
    after = text[text.index(f"\n{heading}\n"):]
    return re.search(rf"```{language}\n(.*?)```", after, re.S).group(1)


def readme_commands() -> list[list[str]]:
    lines = block("## Command line", "bash").splitlines()
    return [shlex.split(line[len(PROGRAM):], comments=True) for line in lines if line.startswith(PROGRAM)]


def printed_commands() -> list[tuple[str, str]]:
    """(file, command) for every ``python -m galaxy_core ...`` in the README and docs/, in a code block or inline
    in backticks, with each placeholder (``<...>``) made one word; inline ones that elide (``...``, ``[...]``) are
    left out."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        lines = [line.strip() for code in re.findall(r"```(?:bash|sh|text)?\n(.*?)```", text, re.S)
                 for line in code.splitlines()]
        lines += [c for c in re.findall(r"`([^`\n]+)`", text) if "..." not in c and "[" not in c]
        for line in lines:
            if line.startswith(PROGRAM):
                command = re.sub(r"<[^>]*>", "placeholder", line[len(PROGRAM):].split("  #")[0])
                found.append((page.name, command))
    return found


def fresh_clone(root: Path, mp: pytest.MonkeyPatch) -> Path:
    """Make ``root`` what the commands see of a fresh clone (``data/`` with only its README, so that the small demo
    is made on first use; the shipped ``checkpoints/default``; a user's marks in ``labels.csv``) and work there."""
    (root / "data").mkdir()
    shutil.copy(ROOT / "data" / "README.md", root / "data" / "README.md")
    mp.setattr(demo_set, "DATA_ROOT", root / "data")
    mp.setattr(demo_set, "DEFAULT_ROOT", root / "data" / "demo")
    mp.setitem(demo_set._DEFAULTS, "n_labelled", 24)
    mp.setitem(demo_set._DEFAULTS, "n_unlabelled", 6)
    mp.setitem(demo_set._DEFAULTS, "size", 96)
    shutil.copytree(ROOT / "checkpoints" / "default", root / "checkpoints" / "default")
    (root / "labels.csv").write_text("GalaxyID,label\n" + "".join(  # a user's marks on four demo galaxies
        f"{demo_set.FIRST_ID + i},{answer}\n" for i, answer in enumerate(["yes", "no", "yes", "no"])))
    mp.setattr(modelchoice, "CHECKPOINTS", root / "checkpoints")
    mp.chdir(root)
    return root


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Path:
    return fresh_clone(tmp_path, monkeypatch)


def fill(argv: list[str], run: str | None) -> list[str]:
    if any("<name>" in a for a in argv):
        assert run is not None, f"{argv} names a run before any train command made one"
        argv = [a.replace("<name>", run) for a in argv]
    for placeholder, value in PLACEHOLDERS.items():
        argv = [a.replace(placeholder, value) for a in argv]
    assert not [a for a in argv if "<" in a], f"an unknown placeholder in {argv}"
    return argv


def run_all(commands: list[list[str]]) -> list[tuple[list[str], int, str, str]]:
    """Run each command in order with its placeholders filled in, up to the first that fails; returns each run's
    (argv, exit code, stdout, stderr)."""
    results, run = [], None
    for argv in commands:
        argv = fill(argv, run)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
        results.append((argv, code, out.getvalue(), err.getvalue()))
        if code != 0:
            break
        if argv[0] == "train" and run is None:
            run = sorted(p.name for p in Path("runs").iterdir())[0]
    return results


def assert_all_ran(results: list[tuple[list[str], int, str, str]], commands: list[list[str]]) -> None:
    for argv, code, _, err in results:
        assert code == 0, (argv, err[-2000:])
    assert len(results) == len(commands), "a command before these failed"


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    """The README's command-line block run in order in a fresh clone of its own: (the clone, the commands, their
    results). Module-wide, because the home page's test reads its own commands' results here (see there); neither
    test writes into the clone."""
    commands = readme_commands()
    with pytest.MonkeyPatch.context() as mp:
        root = fresh_clone(tmp_path_factory.mktemp("readme"), mp)
        results = run_all(commands)
    return root, commands, results


@pytest.mark.slow
def test_the_readme_command_line_runs_as_shown_on_a_fresh_clone(readme_run):
    sandbox, commands, results = readme_run
    names = [c[0] for c in commands]
    assert names[:4] == ["summary", "prepare", "models", "train"]
    assert_all_ran(results, commands)
    outputs = [(out, err) for _, _, out, err in results]
    assert "built-in synthetic demo" in outputs[0][1]  # said, on stderr, by the first command on an empty data/
    run = sorted(p.name for p in (sandbox / "runs").iterdir())[0]
    assert (sandbox / "checkpoints" / run / "model.safetensors").is_file()  # export
    shipped = (ROOT / "checkpoints" / "default" / "model.safetensors").read_bytes()  # what the clone started with
    assert (sandbox / "checkpoints" / "default" / "model.safetensors").read_bytes() == shipped  # never replaced
    assert (sandbox / "outputs" / "answers.csv").is_file()  # predict, where the README writes its examples' tables
    assert "galaxynet" in outputs[names.index("runs")][0]
    assert (sandbox / "data" / "demo" / "training_solutions_rev1.csv").is_file()


@pytest.mark.parametrize("page, command", printed_commands())
def test_every_printed_command_parses(page, command):
    argv = shlex.split(command)
    try:
        cli.build_parser().parse_args(argv)
    except SystemExit as e:
        pytest.fail(f"{page}: `python -m galaxy_core {command}` does not parse (exit {e.code})")


@pytest.mark.slow
def test_the_readme_python_api_runs_as_shown(sandbox):
    code = block("The same functions are the Python API:", "python")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    assert namespace["ev"].rmse() > 0 and len(namespace["frame"]) == 6
    assert (sandbox / "outputs" / "answers.csv").is_file()


@pytest.mark.slow
def test_the_home_pages_commands_run_as_shown(request):
    text = (ROOT / "app.py").read_text(encoding="utf-8")
    shown = re.findall(r"`python -m galaxy_core ([^`]+)`", text)
    assert [c.split()[0] for c in shown] == ["summary", "prepare", "train"]
    commands = [shlex.split(c.replace("my_data", "data/")) for c in shown]  # my_data: the user's folder
    readme = [c for c in readme_commands() if c != ["models"]]  # `models` only lists the registry: it changes nothing
    if commands == readme[:len(commands)]:
        # The README's run makes these very commands, in this order, on a fresh clone: running them again here
        # would train the same model a second time and prove nothing more.
        results = [r for r in request.getfixturevalue("readme_run")[2] if r[0] != ["models"]][:len(commands)]
    else:
        request.getfixturevalue("sandbox")  # a fresh clone of this test's own, to run them in
        results = run_all(commands)
    assert [argv for argv, *_ in results] == commands[:len(results)]
    assert_all_ran(results, commands)


def test_the_readme_checkpoint_conversion_runs_as_shown(sandbox, capsys):
    # The Reliability section's way from a pickled state dict one trusts to a checkpoint this project loads.
    import torch

    from galaxy_core.models import registry

    torch.save(registry.build_model("galaxynet").state_dict(), sandbox / "weights.pt")
    code = block("## Reliability", "python", "docs/reliability.md")
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102 - the README's own example
    loaded = registry.load_model_folder(sandbox / "my_model")
    assert loaded.config["name"] == "galaxynet"
    shown = re.search(r"# then: python -m galaxy_core (.+)", code).group(1)
    images = demo_set.ensure_demo_dataset() / "images_test_rev1"  # any images: the demo's, as on a fresh clone
    argv = shlex.split(shown.replace("IMAGES", str(images))) + ["--out", "converted.csv"]
    assert cli.main(argv) == 0, capsys.readouterr().err[-2000:]
    assert (sandbox / "converted.csv").is_file()
