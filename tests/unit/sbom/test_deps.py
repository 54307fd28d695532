"""Requirements-file parsing and model-directory dependency discovery (mlsec.sbom.deps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsec.errors import SbomError
from mlsec.sbom.deps import Dependency, discover, read_requirements


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def by_name(deps: tuple[Dependency, ...]) -> dict[str, Dependency]:
    return {d.name: d for d in deps}


def test_pins_specifiers_extras_markers_and_comments(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "# a comment line\n"
        "\n"
        "torch==2.3.1  # inline comment\n"
        "numpy>=1.26,<3\n"
        "Requests[socks,security]==2.19.0 ; python_version >= '3.8'\n"
        "Jinja2\n"
        "scikit_learn ~= 1.4\n",
    )
    deps = read_requirements(req)
    assert [d.name for d in deps] == ["torch", "numpy", "requests", "jinja2", "scikit-learn"]
    d = by_name(deps)
    assert d["torch"] == Dependency("torch", "2.3.1", "==2.3.1", (), None, "requirements.txt:3")
    assert d["numpy"].version is None
    assert d["numpy"].specifier == "<3,>=1.26"
    assert d["requests"].version == "2.19.0"
    assert d["requests"].extras == ("security", "socks")
    assert d["requests"].marker == 'python_version >= "3.8"'
    assert d["requests"].source == "requirements.txt:5"
    assert d["jinja2"].specifier == "" and d["jinja2"].version is None
    assert d["scikit-learn"].specifier == "~=1.4" and d["scikit-learn"].version is None


def test_purl_pinned_unpinned_and_encoded() -> None:
    pinned = Dependency("requests", "2.19.0", "==2.19.0", (), None, "r:1")
    unpinned = Dependency("numpy", None, ">=1.26", (), None, "r:2")
    local = Dependency("torch", "2.3.1+cpu", "==2.3.1+cpu", (), None, "r:3")
    assert pinned.purl == "pkg:pypi/requests@2.19.0"
    assert unpinned.purl == "pkg:pypi/numpy"
    assert local.purl == "pkg:pypi/torch@2.3.1%2Bcpu"
    assert pinned.to_dict() == {
        "name": "requests",
        "version": "2.19.0",
        "specifier": "==2.19.0",
        "extras": [],
        "marker": None,
        "source": "r:1",
        "purl": "pkg:pypi/requests@2.19.0",
    }


def test_only_exact_double_equals_is_a_pin(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "a==1.0\nb==1.*\nc===1.0\nd>=1,<=1\ne==1.0,>=0.5\n",
    )
    versions = {d.name: d.version for d in read_requirements(req)}
    assert versions == {"a": "1.0", "b": None, "c": None, "d": None, "e": None}


def test_continuations_and_hashes_stay_out_of_the_specifier(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "certifi==2024.2.2 \\\n"
        "    --hash=sha256:0569859f95fc761b18b45ef421b1290a0f65f147e92a1e5eb3e635f9a5e4e66f \\\n"
        "    --hash=sha256:dc16dc6a0b4bd6f6f6ed5da8b6a52e0e8a4db0a6e2e6e7f4c37e0b0c5c7b1c2d\n"
        "idna==3.6 --hash=sha256:c05567e9c24a6b9faaa835c4821bad0590fbb9d5779e7caa6e1cc4978e7eb24f\n"
        "urllib3\\\n"
        ">=2\n",
    )
    d = by_name(read_requirements(req))
    assert d["certifi"].specifier == "==2024.2.2"
    assert d["certifi"].version == "2024.2.2"
    assert d["certifi"].source == "requirements.txt:1"
    assert d["idna"].version == "3.6" and d["idna"].source == "requirements.txt:4"
    assert d["urllib3"].specifier == ">=2" and d["urllib3"].source == "requirements.txt:5"


def test_options_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "constraints.txt", "torch==0.0.1\n")
    req = write(
        tmp_path / "requirements.txt",
        "--index-url https://download.pytorch.org/whl/cpu\n"
        "-i https://example.org/simple\n"
        "--extra-index-url=https://example.org/extra\n"
        "-f https://example.org/links\n"
        "--find-links ./wheels\n"
        "--pre\n"
        "--no-binary :all:\n"
        "--require-hashes\n"
        "-c constraints.txt\n"
        "--constraint constraints.txt\n"
        "safetensors==0.4.3\n",
    )
    deps = read_requirements(req)
    assert [(d.name, d.version) for d in deps] == [("safetensors", "0.4.3")]
    assert deps[0].source == "requirements.txt:11"


def test_editable_and_url_requirements_keep_a_name_without_version(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "-e git+https://github.com/org/proj.git@v1.0#egg=My_Proj\n"
        "--editable=git+https://github.com/org/other.git#egg=other-pkg\n"
        "-e .\n"
        "./local/pkg\n"
        "peft @ https://github.com/huggingface/peft/archive/v0.10.0.zip\n"
        "https://example.org/archive.tar.gz#egg=bar\n",
    )
    deps = read_requirements(req)
    assert [(d.name, d.version, d.source) for d in deps] == [
        ("my-proj", None, "requirements.txt:1"),
        ("other-pkg", None, "requirements.txt:2"),
        ("peft", None, "requirements.txt:5"),
        ("bar", None, "requirements.txt:6"),
    ]
    assert by_name(deps)["peft"].purl == "pkg:pypi/peft"


def test_includes_resolve_relative_to_the_including_file(tmp_path: Path) -> None:
    write(tmp_path / "reqs" / "base.txt", "numpy==1.26.4\n-r extra/more.txt\n")
    write(tmp_path / "reqs" / "extra" / "more.txt", "pillow==10.3.0\n")
    write(tmp_path / "reqs" / "other.txt", "tokenizers==0.19.1\n")
    write(tmp_path / "reqs" / "third.txt", "regex==2024.4.16\n")
    req = write(
        tmp_path / "requirements.txt",
        "torch==2.3.1\n-r reqs/base.txt\n--requirement=reqs/other.txt\n-rreqs/third.txt\n"
        "transformers==4.41.0\n",
    )
    deps = read_requirements(req)
    assert [(d.name, d.source) for d in deps] == [
        ("torch", "requirements.txt:1"),
        ("numpy", "reqs/base.txt:1"),
        ("pillow", "reqs/extra/more.txt:1"),
        ("tokenizers", "reqs/other.txt:1"),
        ("regex", "reqs/third.txt:1"),
        ("transformers", "requirements.txt:5"),
    ]


def test_include_loop_terminates_and_reads_each_file_once(tmp_path: Path) -> None:
    write(tmp_path / "b.txt", "-r a.txt\nb==2\n-r b.txt\n")
    a = write(tmp_path / "a.txt", "a==1\n-r b.txt\n-r ./a.txt\n")
    deps = read_requirements(a)
    assert [(d.name, d.source) for d in deps] == [("a", "a.txt:1"), ("b", "b.txt:2")]


def test_missing_and_remote_includes_are_errors(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "torch==2.3.1\n-r missing.txt\n")
    with pytest.raises(SbomError) as err:
        read_requirements(req)
    assert str(err.value) == (
        "requirements.txt:2: missing.txt: cannot read requirements: No such file or directory"
    )
    remote = write(tmp_path / "remote.txt", "-r https://example.org/requirements.txt\n")
    with pytest.raises(SbomError, match=r"^remote.txt:1: remote requirements file not followed"):
        read_requirements(remote)


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "torch==2.3.1\n\n# fine so far\nnumpy>=1.26\nnumpy=>1.26 \\\n  ; os_name == 'nt'\nok==1\n",
    )
    with pytest.raises(SbomError) as err:
        read_requirements(req)
    assert (
        str(err.value) == "requirements.txt:5: not a requirement: \"numpy=>1.26 ; os_name == 'nt'\""
    )
    assert "\n" not in str(err.value)
    other = write(tmp_path / "other.txt", "".join(f"p{i}==1\n" for i in range(6)) + "torch=>2\n")
    with pytest.raises(SbomError) as err:
        read_requirements(other)
    assert str(err.value) == "other.txt:7: not a requirement: 'torch=>2'"


def test_unreadable_and_undecodable_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    with pytest.raises(SbomError) as err:
        read_requirements(missing)
    assert str(err.value) == f"{missing}: cannot read requirements: No such file or directory"
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"torch==2.3.1\n\xff\xfe\x00\n")
    with pytest.raises(SbomError, match=r"bin.txt: requirements file is not UTF-8 text$"):
        read_requirements(binary)


def test_duplicates_keep_the_first_per_marker(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.txt",
        "torch==2.3.1\n"
        "Torch==2.0.0\n"
        "numpy==1.24.4; python_version < '3.9'\n"
        "numpy==1.26.4; python_version >= '3.9'\n"
        "numpy==2.0.0; python_version >= '3.9'\n",
    )
    deps = read_requirements(req)
    assert [(d.name, d.version, d.source) for d in deps] == [
        ("torch", "2.3.1", "requirements.txt:1"),
        ("numpy", "1.24.4", "requirements.txt:3"),
        ("numpy", "1.26.4", "requirements.txt:4"),
    ]
    assert read_requirements(req) == deps  # deterministic


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_bytes("\ufefftorch==2.3.1\r\nnumpy\r\n".encode())
    assert [(d.name, d.version) for d in read_requirements(req)] == [
        ("torch", "2.3.1"),
        ("numpy", None),
    ]


def test_discover_reads_the_model_directory_requirements(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write(model / "config.json", "{}")
    write(model / "requirements.txt", "einops==0.8.0\n-r extra.txt\n")
    write(model / "extra.txt", "flash_attn>=2\n")
    deps = discover(model)
    assert [(d.name, d.version, d.source) for d in deps] == [
        ("einops", "0.8.0", "requirements.txt:1"),
        ("flash-attn", None, "extra.txt:1"),
    ]


def test_discover_without_requirements_declares_nothing(tmp_path: Path) -> None:
    model = tmp_path / "model"
    write(model / "model.safetensors", "x")
    assert discover(model) == ()
    assert discover(model / "model.safetensors") == ()  # a single-file model
    write(model / "sub" / "requirements.txt", "torch==2.3.1\n")  # only the top level counts
    assert discover(model) == ()


def test_discover_stays_inside_the_model_directory(tmp_path: Path) -> None:
    write(tmp_path / "outside.txt", "secret==1\n")
    model = tmp_path / "model"
    write(model / "requirements.txt", "torch==2.3.1\n-r ../outside.txt\n")
    with pytest.raises(SbomError, match=r"^requirements.txt:2: ../outside.txt: .*outside model/$"):
        discover(model)
    # the same file read directly (a user's own --requirements) may include it
    assert [d.name for d in read_requirements(model / "requirements.txt")] == ["torch", "secret"]


def test_discover_refuses_a_requirements_symlink_out_of_the_model(tmp_path: Path) -> None:
    target = write(tmp_path / "elsewhere.txt", "torch==2.3.1\n")
    model = tmp_path / "model"
    model.mkdir()
    (model / "requirements.txt").symlink_to(target)
    with pytest.raises(SbomError, match=r"outside model/$"):
        discover(model)
