"""`toolweave toolset import --mcp SERVER`: a live MCP server's tools (the SDK's own server over
stdio) land in the toolset with their server recorded; one that cannot be reached is a reject."""
import shlex
import sys
from pathlib import Path

from toolweave.io import read_records
from toolweave.schemas import Reject, Tool
from toolweave.toolsets.command import EXIT_REJECTS, import_command, mcp_server, rejects_dir

SERVER = Path(__file__).parents[1] / "executors" / "mcp_server.py"


def test_a_named_server_is_the_one_allowed():
    http, allowed = mcp_server("http://127.0.0.1:8123/mcp")
    assert http.transport == "http" and allowed.allow_hosts == ["127.0.0.1"] and not allowed.allow_commands
    stdio, allowed = mcp_server("python3 -m weather --fast")
    assert (stdio.command, stdio.args, allowed.allow_commands) == ("python3", ["-m", "weather", "--fast"], ["python3"])


def test_live_mcp_server_tools_are_imported_and_an_unreachable_one_is_a_reject(tmp_path):
    out = tmp_path / "toolsets"
    live = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))}"
    gone = f"{shlex.quote(sys.executable)} {tmp_path / 'no_such_server.py'}"
    assert import_command([], str(out), mcp=[live, gone]) == EXIT_REJECTS
    [tool] = read_records(out, Tool)[0]
    assert tool.source == "mcp" and {"get_forecast", "to_fahrenheit"} <= {f.name for f in tool.functions}
    assert tool.extra["mcp_server"]["command"] == sys.executable
    [reject] = read_records(rejects_dir(out), Reject)[0]
    assert reject.source == f"mcp:{gone}" and "cannot list its tools" in reject.reason
