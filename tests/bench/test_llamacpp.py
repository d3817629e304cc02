"""The llamacpp back-end's parts that need no model: tool-call parsing and chunk checks."""

import base64
import hashlib
import zipfile

import pytest

from bench.llamacpp import LlamaUnavailable, _record_digest, check_prepared, parse_tool_calls


def test_tool_call_blocks_are_taken_out_of_the_text():
    text = 'Sure.\n<tool_call>\n{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}\n</tool_call>'
    assert parse_tool_calls(text, {"HassTurnOn"}) == (
        "Sure.",
        [{"name": "HassTurnOn", "arguments": {"name": "kitchen light"}}],
    )


def test_a_bare_or_fenced_json_call_of_an_offered_tool_counts_too():
    fenced = '```json\n{"name": "HassTurnOff", "arguments": "{\\"area\\": \\"Kitchen\\"}"}\n```'
    call = {"name": "HassTurnOff", "arguments": {"area": "Kitchen"}}
    assert parse_tool_calls(fenced, {"HassTurnOff"}) == ("", [call])
    # Not an offered tool, or plain prose: it stays text.
    assert parse_tool_calls('{"name": "rm_rf", "arguments": {}}', {"HassTurnOff"})[1] == []
    assert parse_tool_calls("The light is on.", {"HassTurnOff"}) == ("The light is on.", [])


def test_chunk_digest_is_read_from_the_wheel_record(tmp_path):
    data = b"GGUF chunk"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    wheel_path = tmp_path / "part.whl"
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        wheel.writestr("pkg/data/part01.bin", data)
        wheel.writestr("pkg-0.2.0.dist-info/RECORD", f"pkg/data/part01.bin,sha256={digest},{len(data)}\n")
    with zipfile.ZipFile(wheel_path) as wheel:
        assert _record_digest(wheel, "pkg/data/part01.bin") == hashlib.sha256(data).hexdigest()
        with pytest.raises(ValueError, match="not listed"):
            _record_digest(wheel, "pkg/data/part02.bin")


def test_missing_build_or_model_names_the_prepare_command(tmp_path):
    with pytest.raises(LlamaUnavailable, match=r"python -m bench\.llamacpp prepare"):
        check_prepared(tmp_path / "site", tmp_path / "model.gguf")
