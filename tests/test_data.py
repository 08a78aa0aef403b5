"""The data in data/ is what data/README.md says it is: every file listed, every checksum right."""

import hashlib

from igym_marl.paths import DATA_DIR, data_path

import pytest


def test_every_data_file_is_listed_with_a_matching_checksum():
    sums = {}
    for line in (DATA_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.strip()] = digest
    files = sorted(str(p.relative_to(DATA_DIR)) for p in DATA_DIR.rglob("*")
                   if p.is_file() and p.name not in ("README.md", "SHA256SUMS"))
    assert files == sorted(sums), "data/SHA256SUMS and the files in data/ differ"
    readme = (DATA_DIR / "README.md").read_text()
    for name in files:
        assert f"`{name}`" in readme, f"data/README.md does not describe {name}"
        assert hashlib.sha256((DATA_DIR / name).read_bytes()).hexdigest() == sums[name], f"{name} changed"


def test_a_missing_data_file_is_an_error_naming_it():
    with pytest.raises(FileNotFoundError, match="no_such_file.csv"):
        data_path("traces", "no_such_file.csv")
