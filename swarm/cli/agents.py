"""`swarm agent register|ls|token`: agents, their capabilities and their HTTP tokens."""

from __future__ import annotations

from swarm.cli import base
from swarm.cli.base import Commands, Context, UsageError


def add_agent_register(cli: Commands) -> None:
    p = cli.add("register", cmd_agent_register, "record this agent's capabilities")
    p.add_argument("--name", dest="agent", help="agent name (default: SWARM_AGENT)")
    p.add_argument("--host", help="host name (default: this host)")
    p.add_argument("--gpu", action="append", help="NAME:ARCH:GB instead of NVML (repeatable)")
    p.add_argument("--no-gpu", action="store_true", help="register without GPUs")
    p.add_argument("--tool", action="append", help="tool on PATH (default: detected)")
    p.add_argument("--driver", help="GPU driver version (a newer one makes older runs stale)")
    p.add_argument(
        "--engine",
        action="append",
        metavar="NAME=VERSION",
        help="a serving engine and its version, e.g. vllm=0.11.0 (repeatable)",
    )


def cmd_agent_register(ctx: Context) -> None:
    from swarm.present import render

    agent = base.register_agent(ctx, base.agent(ctx.args))
    ctx.emit(agent, lambda: "registered " + render.agent(agent))


def add_agent_ls(cli: Commands) -> None:
    cli.add("ls", cmd_agent_ls, "list registered agents")


def cmd_agent_ls(ctx: Context) -> None:
    from swarm.present import render
    from swarm.queue import agents

    items = agents.list_agents(ctx.store)
    ctx.emit(
        {"agents": [a.model_dump() for a in items]},
        lambda: "\n\n".join(render.agent(a) for a in items) or "no agents",
    )


def add_agent_token(cli: Commands) -> None:
    p = cli.add("token", cmd_agent_token, "issue, list or revoke agents' HTTP bearer tokens")
    p.add_argument(
        "name", nargs="?", help="issue a new token for this agent (replaces its old one)"
    )
    p.add_argument("--list", action="store_true", help="list who has a token (never the tokens)")
    p.add_argument("--revoke", metavar="NAME", help="delete NAME's token")
    p.add_argument(
        "--role",
        choices=("agent", "person"),
        default="agent",
        help="agent (default) or person: a person may also record triage decisions",
    )


def cmd_agent_token(ctx: Context) -> None:
    """Issue, list or revoke the bearer tokens agents (and people) present to `swarm serve --http`."""
    from swarm.queue import auth

    a = ctx.args
    if a.list:
        tokens = auth.list_tokens(ctx.store)
        ctx.emit(
            {"tokens": [t.model_dump(mode="json") for t in tokens]},
            lambda: (
                "\n".join(f"{t.name}  {t.role}  since {t.created_at}" for t in tokens)
                or "no tokens (the operator's is the lab dir's http_token)"
            ),
        )
        return
    if a.revoke:
        gone = auth.revoke_token(ctx.store, a.revoke)
        ctx.emit(gone, lambda: f"revoked {gone.name}'s token: its requests now get 401")
        return
    if not a.name:
        raise UsageError("give NAME (a new token), --list or --revoke NAME")
    issued = auth.issue_token(ctx.store, a.name, base.now(), auth.Role(a.role))
    ctx.emit(
        issued,
        lambda: (
            f"{issued.token}\n(a {issued.role} token for {issued.name}, shown once; its hash is "
            f"kept. Give it to the agent as SWARM_TOKEN; an older token of {issued.name} stops "
            "working)"
        ),
    )


def register(cli: Commands) -> None:
    group = cli.group("agent", "register and list agents")
    add_agent_register(group)
    add_agent_ls(group)
    add_agent_token(group)
