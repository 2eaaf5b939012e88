"""Print the `dev` extra and the runtime dependencies of pyproject.toml, one per argument.

The Makefile installs these before building, so `pip install -e` never has to compile the
extension twice and no requirement list is written down in two places.
"""

import tomllib
from pathlib import Path

project = tomllib.loads(Path(__file__).parent.parent.joinpath("pyproject.toml").read_text())[
    "project"
]
print(" ".join(r for r in project["dependencies"] + project["optional-dependencies"]["dev"]))
