"""A real MCP client (PyPI's `mcp`) driving cortex-mcp over streamable HTTP, for MCPServerTests.

Usage: python http_client.py URL READ_TOKEN WRITE_TOKEN TARGET_REPOSITORY
Prints one JSON object with what each step returned; exits 1 on an unexpected failure.
"""
import asyncio
import json
import sys

import httpx
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import McpError

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def parse(result):
    text = result.content[0].text if result.content else ""
    if result.isError:
        return {"isError": True, "text": text}
    return json.loads(text)


async def raw(url, headers):
    """One initialize request outside the SDK: the HTTP status and the headers that matter."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(url, json=INIT, headers={**ACCEPT, **headers})
        return {"status": r.status_code, "www_authenticate": r.headers.get("www-authenticate"),
                "session": r.headers.get("mcp-session-id"), "body": r.text[:300]}


async def main(url, read_token, write_token, target):
    out = {}
    out["no_token"] = await raw(url, {})
    out["wrong_token"] = await raw(url, {"Authorization": "Bearer not-a-token-of-this-cluster"})
    out["not_bearer"] = await raw(url, {"Authorization": f"Basic {read_token}"})

    # A read-scope token: every read tool, but not start_run.
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {read_token}"}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, session_id):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                out["server"] = init.serverInfo.name
                out["read_session"] = session_id()
                out["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
                try:
                    result = await session.call_tool("start_run", {"targets": [target]})
                    out["read_start_run"] = {"isError": result.isError, "text": result.content[0].text if result.content else ""}
                except McpError as e:
                    out["read_start_run"] = {"mcp_error": e.error.code, "message": e.error.message}
                status = await session.call_tool("get_run_status", {"run_id": "run-does-not-exist"})
                out["read_unknown_run"] = {"isError": status.isError, "text": status.content[0].text if status.content else ""}
                try:
                    await session.call_tool("get_lineage", {"asset_id": "x", "depth": 99})
                    out["read_bad_input"] = "accepted"
                except McpError as e:
                    out["read_bad_input"] = {"mcp_error": e.error.code, "message": e.error.message}

    # A write-scope token: a whole run, followed to the end, in a session of its own.
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {write_token}"}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, session_id):
            async with ClientSession(read, write) as session:
                await session.initialize()
                out["write_session"] = session_id()
                run = parse(await session.call_tool("start_run", {"targets": [target], "goal": "security"}))
                out["run_id"] = run["run_id"]
                for _ in range(240):
                    state = parse(await session.call_tool("get_run_status", {"run_id": run["run_id"]}))
                    if state["finished"]:
                        break
                    await asyncio.sleep(0.5)
                out["final"] = state
                out["findings"] = parse(await session.call_tool("list_findings", {"run_id": run["run_id"]}))
                resources = await session.list_resources()
                out["resources"] = [str(r.uri) for r in resources.resources]
    # That session was closed (DELETE) when the client left: its id is gone.
    async with httpx.AsyncClient(timeout=10) as client:
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        r = await client.post(url, json=ping, headers={**ACCEPT, "Authorization": f"Bearer {write_token}",
                                                     "Mcp-Session-Id": out["write_session"], "Mcp-Protocol-Version": "2025-06-18"})
        out["closed_session"] = {"status": r.status_code, "body": r.text[:200]}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
