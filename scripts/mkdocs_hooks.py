"""mkdocs hook (mkdocs.yml): the README becomes the site's home page and data/README.md its page on
sources and licences; their links to docs/ pages are pointed at the site's own pages."""
from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

PAGES = {"README.md": "index.md", "data/README.md": "data.md"}


def _site_links(text: str) -> str:
    return text.replace("](docs/", "](").replace("](data/README.md)", "](data.md)")


def on_files(files, config):
    root = Path(config.config_file_path).parent
    for source, page in PAGES.items():
        files.append(File.generated(config, page, content=_site_links((root / source).read_text())))
    return files
