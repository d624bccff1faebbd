"""The documentation as a new user reads it (README.md, docs/*.md, CONTRIBUTING.md): its links lead
somewhere, every page is reachable from the README, its commands use flags that exist, and the
README stays a README."""

import dataclasses
import glob
import os
import re
import shlex

from trainer import command_line
from trainer.cli import GLOBAL_FLAGS

from conftest import REPO

DOCS = ["README.md", "CONTRIBUTING.md", *sorted(os.path.relpath(p, REPO) for p in glob.glob(f"{REPO}/docs/*.md"))]
# Flags of other programs the pages show (tensorboard, gcloud, ruff) and of dcgan itself (not config fields).
# Flags of other programs: tensorboard, gcloud, ruff, pip (--group).
OTHER_FLAGS = {"logdir", "location", "member", "role", "fix", "project", "config", "help", "version", "group"}


def read(page: str) -> str:
    with open(os.path.join(REPO, page), encoding="utf-8") as f:
        return f.read()


def readme() -> str:
    return read("README.md")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def prose(text: str) -> str:
    """The text without its fenced code blocks (a `# comment` in a shell block is not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchors(page: str) -> set[str]:
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", prose(read(page)), flags=re.M)}


def links(page: str) -> list[str]:
    """The page's relative link targets, as paths from the repository root (with any #anchor)."""
    out = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(read(page))):
        if "://" in target or target.startswith("mailto:"):
            continue
        path, _, fragment = target.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        out.append(path + (f"#{fragment}" if fragment else ""))
    return out


def test_the_pages_checked_are_the_readme_the_docs_and_contributing():
    assert {"README.md", "CONTRIBUTING.md", "docs/README.md", "docs/training.md", "docs/cloud.md"} <= set(DOCS)


def test_every_link_leads_to_a_heading_or_a_file():
    for page in DOCS:
        for target in links(page):
            path, _, fragment = target.partition("#")
            assert os.path.exists(os.path.join(REPO, path)), f"{page}: {target} does not exist"
            if fragment:
                assert path.endswith(".md"), f"{page}: {target}"
                assert fragment in anchors(path), f"{page}: no heading #{fragment} in {path}"


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = set(), ["README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        todo += [t.partition("#")[0] for t in links(page) if t.endswith(".md") or ".md#" in t]
    assert set(DOCS) <= seen, sorted(set(DOCS) - seen)


def test_the_readme_is_a_readme():
    """A user README, not the reference: it fits in ~350 lines and links to the rest."""
    text = readme()
    assert len(text.splitlines()) <= 350
    for page in ("docs/README.md", "docs/training.md", "docs/sampling.md", "docs/cloud.md", "docs/results.md"):
        assert f"]({page}" in text, page
    # The set-up commands a fresh clone runs, exactly as CI and the quick start test use them.
    assert "python3 -m pip install -e . && dcgan train --job_dir=runs/digits\n" in text
    test_command = "python3 -m pip install -U 'pip>=25.1' && python3 -m pip install -e . --group test"
    assert test_command + " && python3 -m pytest -q\n" in text


def shell_commands(text: str) -> list[str]:
    """Every command line of the page's ```bash blocks, continuation lines joined, `&&` split."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return " ".join(b.replace("\\\n", " ") for b in blocks).replace("&&", "\n").splitlines()


def job_fields(job: str) -> set[str]:
    return {f.name for f in dataclasses.fields(command_line.CONFIG_CLASSES[job])} | {"config", "help", *GLOBAL_FLAGS}


def flags_of(rest: str) -> list[str]:
    return [t[2:].split("=", 1)[0] for t in shlex.split(rest.replace("...", ""), posix=True) if t.startswith("--")]


def test_every_flag_in_the_commands_exists():
    """Each `dcgan COMMAND --flag` in a shell block, or in inline code, names a real flag of that command."""
    checked = 0
    for page in DOCS:
        text = read(page)
        inline = re.findall(r"`(dcgan [^`]+)`", prose(text))
        for line in shell_commands(text) + inline:
            for match in re.finditer(r"dcgan (train|sample|augment|evaluate)\b([^#;|]*)", line):
                job, rest = match.group(1), match.group(2)
                for name in flags_of(rest):
                    assert name in job_fields(job), f"{page}: `dcgan {job} --{name}` is not a flag: {line[:120]}"
                    checked += 1
            for match in re.finditer(r"dcgan launch (vm|vertex|k8s)\b([^#;|]*)", line):
                jobs = re.findall(r"--job=(train|sample)", match.group(2)) or ["train"]
                known = job_fields("launch") | job_fields(jobs[0]) | {"spec_dir", "gpus_per_worker"}
                for name in flags_of(match.group(2)):
                    assert name in known, f"{page}: `dcgan launch --{name}` is not a flag: {line[:120]}"
                    checked += 1
    assert checked > 80


def test_every_flag_mentioned_anywhere_exists():
    """A `--name` in prose or code is a flag of some dcgan command, of an experiment, or of
    a program the pages name (tensorboard, gcloud, ruff): a renamed flag cannot linger in the docs."""
    fields = set().union(*(job_fields(job) for job in command_line.CONFIG_CLASSES)) | {"spec_dir", "gpus_per_worker"}
    experiment = set()
    scripts = [
        os.path.join(folder, n)
        for folder in ("experiments", "examples")
        for n in os.listdir(os.path.join(REPO, folder))
    ]
    for name in (n for n in scripts if n.endswith(".py")):
        with open(os.path.join(REPO, name), encoding="utf-8") as f:
            experiment |= set(re.findall(r"\"--(\w+)\"", f.read()))
    for page in DOCS:
        for name in re.findall(r"(?<![\w-])--([a-z][a-z0-9_]*)\b(?!-)", read(page)):
            assert name in fields | experiment | OTHER_FLAGS, f"{page}: --{name} is not a flag of anything"


def test_examples_create_the_job_dirs_they_use():
    """A shell block that uses runs/NAME (as --generator or --synthetic) shows, on that page and before,
    the `dcgan train --job_dir=runs/NAME` that creates it."""
    assert "dcgan train --job_dir=runs/digits\n" in readme()  # the set-up command every page may build on
    for page in DOCS:
        made = {"runs/digits"}
        for line in shell_commands(read(page)):
            made |= set(re.findall(r"dcgan train [^#]*--job_dir=(runs/[\w.-]+)", line))
            for used in re.findall(r"--(?:generator|synthetic)=(runs/[\w.-]+)", line):
                if "$" in line:  # a loop over the job dirs created just above
                    continue
                assert used in made, f"{page}: {used} is used before a command creates it: {line.strip()[:120]}"
