"""The README's two commands are the ones CI and users run."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_opens_with_the_two_commands():
    job, tests = _commands()
    assert job == 'pip install -e ".[dev]" && python -m nets.mnist'
    assert tests == 'pip install -e ".[dev]" && pytest'


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = _commands()
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()
          if l.strip() and not l.strip().startswith("#")]
    assert tests in ci
