"""A real MCP client (PyPI's `mcp`) driving cortex-mcp over stdio, for MCPServerTests.

Usage: python client.py CORTEX_MCP_BINARY TARGET_REPOSITORY
Environment: CORTEX_REDIS_URL and CORTEX_CATALOG_URL reach the suite under test (passed on to the server).
Prints one JSON object with what each step returned; exits 1 on an unexpected failure.
"""
import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import McpError


def parse(result):
    """A tool result's JSON, or what went wrong (an error result's text) for the test to show."""
    text = result.content[0].text if result.content else ""
    if result.isError:
        return {"isError": True, "text": text}
    return json.loads(text)


async def main(binary, target):
    params = StdioServerParameters(command=binary, args=[], env={k: v for k, v in os.environ.items() if k.startswith("CORTEX_") or k in ("PATH", "HOME")})
    out = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = init.serverInfo.name
            tools = await session.list_tools()
            out["tools"] = sorted(t.name for t in tools.tools)
            out["start_run_description"] = next(t.description for t in tools.tools if t.name == "start_run")

            started = await session.call_tool("start_run", {"targets": [target], "goal": "full-orchestration"})
            run = parse(started)
            out["run_id"] = run["run_id"]
            statuses = []
            for _ in range(240):
                status = await session.call_tool("get_run_status", {"run_id": run["run_id"]})
                state = parse(status)
                if not statuses or statuses[-1] != state["status"]:
                    statuses.append(state["status"])
                if state["finished"]:
                    break
                await asyncio.sleep(0.5)
            out["statuses"] = statuses
            out["final"] = state

            findings = await session.call_tool("list_findings", {"run_id": run["run_id"], "severity": "high"})
            out["findings"] = parse(findings)
            cicd = await session.call_tool("list_findings", {"run_id": run["run_id"], "master": "cicd", "limit": 2})
            out["cicd_findings"] = parse(cicd)

            assets = await session.call_tool("query_catalog", {"type": "REPOSITORY"})
            out["assets"] = parse(assets)
            if out["assets"].get("assets"):
                lineage = await session.call_tool("get_lineage", {"asset_id": out["assets"]["assets"][0]["id"], "depth": 2})
                out["lineage"] = parse(lineage)
            budget = await session.call_tool("read_budget", {"run_id": run["run_id"]})
            out["budget"] = budget.content[0].text

            resources = await session.list_resources()
            out["resources"] = [str(r.uri) for r in resources.resources]
            summary = await session.read_resource(f"cortex://runs/{run['run_id']}/summary.md")
            out["summary_starts"] = summary.contents[0].text[:200]

            errors = {}
            for name, args in [("start_run", {"targets": "not-a-list"}), ("start_run", {}), ("list_findings", {}),
                               ("get_lineage", {"asset_id": "x", "depth": 99}), ("no_such_tool", {}),
                               ("start_run", {"targets": ["/nonexistent/repo"]}), ("list_findings", {"run_id": run["run_id"], "severity": "urgent"}),
                               ("start_run", {"targets": [target], "colour": "red"})]:
                key = f"{name} {json.dumps(args)}"
                try:
                    result = await session.call_tool(name, args)
                    errors[key] = {"isError": result.isError, "text": result.content[0].text if result.content else ""}
                except McpError as e:
                    errors[key] = {"mcp_error": e.error.code, "message": e.error.message}
            out["errors"] = errors
            try:
                await session.read_resource("cortex://runs/../../etc/passwd")
                out["bad_resource"] = "read"
            except McpError as e:
                out["bad_resource"] = {"mcp_error": e.error.code, "message": e.error.message}
            # Without the report directory (cortex-mcp on a machine or pod without the coordinator's
            # reports volume), list_findings is an error result, never "0 findings".
            report_dir = state["report_dir"]
            os.rename(report_dir, report_dir + ".moved")
            try:
                out["findings_without_report"] = parse(await session.call_tool("list_findings", {"run_id": run["run_id"]}))
                try:
                    await session.read_resource(f"cortex://runs/{run['run_id']}/summary.md")
                    out["summary_without_report"] = "read"
                except McpError as e:
                    out["summary_without_report"] = {"mcp_error": e.error.code, "message": e.error.message}
            finally:
                os.rename(report_dir + ".moved", report_dir)
            # Still serving after all of that.
            again = await session.list_tools()
            out["alive_after_errors"] = len(again.tools)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
