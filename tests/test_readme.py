"""The README as a new user reads it: its links lead somewhere, and its commands use flags that exist."""

import dataclasses
import os
import re
import shlex

from trainer import command_line

from conftest import REPO


def readme() -> str:
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        return f.read()


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_link_in_the_readme_leads_to_a_heading_or_a_file():
    text = readme()
    anchors = {anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith("#"):
            assert target[1:] in anchors, target
        elif "://" not in target:
            assert os.path.exists(os.path.join(REPO, target.split("#")[0])), target


def test_every_flag_in_the_readme_commands_exists():
    """Each `dcgan COMMAND --flag` in a shell block names a real flag of that command."""
    text = readme()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    commands = " ".join(b.replace("\\\n", " ") for b in blocks).replace("&&", "\n").splitlines()
    checked = 0
    for line in commands:
        for match in re.finditer(r"dcgan (train|sample|augment|evaluate)\b([^#;|]*)", line):
            job, rest = match.group(1), match.group(2)
            fields = {f.name for f in dataclasses.fields(command_line.CONFIG_CLASSES[job])} | {"config", "help"}
            for token in shlex.split(rest.replace("...", ""), posix=True):
                if token.startswith("--"):
                    name = token[2:].split("=", 1)[0]
                    assert name in fields, f"`dcgan {job} --{name}` in the README is not a flag: {line.strip()[:120]}"
                    checked += 1
    assert checked > 40


def test_the_code_layout_table_lists_every_module():
    listed = set(re.findall(r"^\| `(trainer/\w+\.py)` \|", readme(), flags=re.M))
    present = {
        f"trainer/{name}"
        for name in os.listdir(os.path.join(REPO, "trainer"))
        if name.endswith(".py") and name not in ("__init__.py", "__main__.py")
    }
    assert listed == present, (sorted(present - listed), sorted(listed - present))
