"""Render nbs/index.ipynb to README.md (Quarto does this in `nbdev_readme`; this works without it)."""
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter

root = Path(__file__).resolve().parent.parent
nb = nbformat.read(root/'nbs'/'index.ipynb', as_version=4)
nb.cells = [c for c in nb.cells if '#| hide' not in c.source]
nb.metadata['language_info'] = {'name': 'python'}   # fenced code blocks get ```python
body, _ = MarkdownExporter().from_notebook_node(nb)
header = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py (`make export`): edit the notebook. -->\n\n'
text = header + body.strip() + '\n'
readme = root/'README.md'
if not readme.exists() or readme.read_text() != text: readme.write_text(text)
