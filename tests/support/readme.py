"""The README's shell blocks, read as a person copies them: a section's command block, and its
transcripts (`$ command` lines, each followed by the output it shows)."""

from __future__ import annotations

import re
from typing import NamedTuple

from crev.server import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()


class Shown(NamedTuple):
    """A command of a transcript and the output the README shows for it."""

    command: str
    output: str


def section(title: str) -> str:
    """The text of the README's `## title` section, up to the next section of its level."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def sh_blocks(text: str) -> list[str]:
    """The ```sh blocks of `text`, each as written."""
    return re.findall(r"^```sh\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def transcript(block: str) -> list[Shown]:
    """A block of `$ command` lines, each with the output lines under it."""
    shown: list[Shown] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            shown.append(Shown(line[2:], ""))
        else:
            assert shown, f"output before any command: {line!r}"
            command, output = shown[-1]
            shown[-1] = Shown(command, output + line + "\n")
    return shown
