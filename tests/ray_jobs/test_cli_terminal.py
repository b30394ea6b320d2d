"""The CLI's own lines (config problems, `toolweave check`) reach the terminal through printable: a
hostile file name or config key cannot retitle or clear the terminal, nor start a line of its own."""
import yaml

from ray_jobs.cli import main

HOSTILE = "x\x1b]0;pwned\x07\nrejected: forged\x1b[2J\u202e"


def test_config_problems_are_one_escaped_line_each(tmp_path, capsys):
    named = tmp_path / f"run{HOSTILE}.yaml"  # the file name, and a resource no node has
    named.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": ["build_toolset"],
                                     "ray": {"actor_resources": {HOSTILE: 1}}}))
    unknown = tmp_path / "load.yaml"  # a key the config does not know: refused at load
    unknown.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": ["solve"], HOSTILE: 1}))
    assert main(["check", str(named)]) == 1
    assert main(["check", str(unknown)]) == 1
    assert main(["run", str(unknown)]) == 2  # refused before Ray starts
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert len(lines) == 3, lines
    for line in lines:
        assert not any(c in line for c in "\x1b\x07\r\u202e"), line
        assert "x\\x1b]0;pwned\\x07\\nrejected: forged\\x1b[2J\\u202e" in line
    assert "a resource no node has" in lines[0] and "Extra inputs are not permitted" in lines[2]
    assert not (tmp_path / "run").exists()
