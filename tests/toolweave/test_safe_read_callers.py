"""Every reader of a file a user names goes through safe_read: a FIFO (or a link to /dev/zero) there is
an error naming the file at once, never a hang or an endless read."""
import os
import time

import pytest

from toolweave import secrets
from toolweave.chat_template import model_chat_template
from toolweave.converters.toolbench import answer_to_episode
from toolweave.evaluation.answers import load_converted
from toolweave.curation.export import read_jsonl
from toolweave.safe_read import UnreadableFile
from toolweave.schemas import RecordError


def _read_secret_file(path):
    os.environ["TW_TEST_SAFE_READ_KEY_FILE"] = str(path)
    try:
        return secrets.read_secret("TW_TEST_SAFE_READ_KEY")
    finally:
        del os.environ["TW_TEST_SAFE_READ_KEY_FILE"]


def _chat_template_file(path):
    # the template a model dir ships, under its own name in that dir
    model = path.parent / "model"
    model.mkdir()
    (model / "chat_template.jinja").symlink_to(path)
    return model_chat_template(str(model))


READERS = {  # reader, the error it raises
    "toolbench answer": (lambda p: answer_to_episode(p), RecordError),
    "converted answers": (load_converted, RecordError),
    "jsonl export": (read_jsonl, RecordError),
    "secret file": (_read_secret_file, ValueError),
    "chat template": (_chat_template_file, UnreadableFile),
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("special", ["fifo", "zero"])
@pytest.mark.parametrize("reader", READERS)
def test_a_special_file_is_named_at_once(tmp_path, reader, special):
    path = tmp_path / "G1_answer" / "10_ChatGPT_DFS_woFilter_w2.json"
    path.parent.mkdir()
    if special == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    read, error = READERS[reader]
    t = time.monotonic()
    with pytest.raises(error) as e:
        read(path)
    assert time.monotonic() - t < 2
    kind = "a FIFO" if special == "fifo" else "a character device"
    assert kind in str(e.value) and "not a regular file" in str(e.value), str(e.value)
    named = path.parent / "model" / "chat_template.jinja" if reader == "chat template" else path
    assert str(named) in str(e.value)
    if reader == "secret file":  # and the env var naming it
        assert "TW_TEST_SAFE_READ_KEY_FILE" in str(e.value)


def test_a_secret_file_over_its_cap_is_refused_without_quoting_it(tmp_path):
    path = tmp_path / "key"
    path.write_text("sk-" + "x" * (secrets.SECRET_FILE_MAX_BYTES + 1))
    with pytest.raises(ValueError, match="over the limit") as e:
        _read_secret_file(path)
    assert "xxxxxxxx" not in str(e.value)


def test_readers_still_read_regular_files_and_name_bad_text(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\n\n{"b": 2}\n')
    assert read_jsonl(tmp_path / "rows.jsonl") == [{"a": 1}, {"b": 2}]
    (tmp_path / "bad.jsonl").write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(RecordError, match="bad.jsonl.*cannot read.*utf-8"):
        read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(RecordError, match="not a map of query ids"):
        load_converted(tmp_path / "list.json")
