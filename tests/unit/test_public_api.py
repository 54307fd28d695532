"""The top-level public API: every name resolves, importing mlsec stays cheap."""

from __future__ import annotations

import subprocess
import sys

import mlsec


def test_every_public_name_resolves() -> None:
    for name in mlsec.__all__:
        assert getattr(mlsec, name) is not None, name
    assert mlsec.sign.__name__ == "sign_model" and mlsec.verify.__name__ == "verify_model"


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        _ = mlsec.nope
    except AttributeError as exc:
        assert "nope" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_mlsec_imports_no_capability() -> None:
    code = (
        "import sys, mlsec; "
        "print(sorted(m for m in sys.modules if m.startswith(('mlsec.', 'cryptography', 'rich', "
        "'typer', 'numpy', 'torch'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_library_page_names_every_public_name() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "library.md").read_text()
    missing = [n for n in mlsec.__all__ if n != "__version__" and f"`{n}" not in page]
    assert not missing, f"docs/library.md does not mention {missing}"
