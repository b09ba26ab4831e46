"""A real MCP client (PyPI's `mcp`) driving cortex-mcp over streamable HTTP while cortex-mcp connects to
Redis as its own ACL user (cortex-mcp), for MCPServerTests: every Redis-backed tool once.

Usage: python acl_client.py URL WRITE_TOKEN TARGET_REPOSITORY BUDGET_RUN_ID
Prints one JSON object with what each step returned; exits 1 on an unexpected failure.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def result(r):
    return {"isError": bool(r.isError), "text": [c.text for c in r.content]}


async def main(url, write_token, target, budget_run):
    out = {}
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {write_token}"}) as http:
        async with streamable_http_client(url, http_client=http) as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                started = result(await session.call_tool("start_run", {"targets": [target], "goal": "security"}))
                out["start_run"] = started
                run_id = json.loads(started["text"][0])["run_id"] if not started["isError"] else None
                out["run_id"] = run_id
                out["status"] = result(await session.call_tool("get_run_status", {"run_id": run_id or "none"}))
                out["overview"] = result(await session.call_tool("get_run_status", {}))
                out["budget"] = result(await session.call_tool("read_budget", {"run_id": budget_run}))
                out["resources"] = [str(r.uri) for r in (await session.list_resources()).resources]
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
