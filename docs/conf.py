"""Sphinx configuration of the streamem documentation.

Build (from the repository root, warnings are errors as in CI):

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Nothing here runs a fit: autodoc imports streamem, the command-line page formats the
argument parser's help, and the gallery shows the example scripts without running them.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent))  # document the work tree, installed or not

import streamem  # noqa: E402

project = "streamem"
author = "the streamem developers"
copyright = "the streamem developers"
version = release = streamem.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "streamem_docs",  # _ext/streamem_docs.py: the gallery, the CLI help, the API coverage check
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
root_doc = "index"

# API reference: one page per public object, generated from the numpydoc docstrings.
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"member-order": "groupwise"}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections say the types
numpydoc_show_class_members = False  # the class templates list the methods instead
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_validation_checks: set[str] = set()  # broken sections still warn (and fail -W)

# No intersphinx: the build runs offline. References to scikit-learn, NumPy or Dask
# objects stay plain text.
default_role = "literal"  # `x` renders as code, as in the README
pygments_style = "sphinx"

html_theme = "pydata_sphinx_theme"
html_title = f"streamem {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 6,
}
html_sidebars = {"index": [], "gallery": []}
html_show_sourcelink = False

# streamem_docs: where the example scripts are
streamem_examples_dir = str(HERE.parent / "scripts" / "examples")
