"""A small MCP server written with the official SDK, for the MCP tests: `python mcp_server.py`
serves stdio, `python mcp_server.py http PORT` streamable HTTP on 127.0.0.1."""
import asyncio
import sys

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

app = MCPServer("weather", instructions="Forecasts and unit conversion for a few cities.")
FORECASTS = {"Paris": "sunny", "Oslo": "snow"}


class Conversion(BaseModel):
    celsius: float
    fahrenheit: float


@app.tool()
def get_forecast(city: str, days: int = 1) -> str:
    """Weather forecast for a city."""
    if city not in FORECASTS:
        raise ToolError(f"unknown city {city}")
    return f"{city}: {FORECASTS[city]} for {days} day(s)"


@app.tool()
def to_fahrenheit(celsius: float) -> Conversion:
    """Convert a temperature from Celsius to Fahrenheit."""
    return Conversion(celsius=celsius, fahrenheit=celsius * 9 / 5 + 32)


@app.tool()
async def slow_report(seconds: float) -> str:
    """Takes its time (for timeout tests)."""
    await asyncio.sleep(seconds)
    return "late"


if __name__ == "__main__":
    if sys.argv[1:2] == ["http"]:
        app.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run()
