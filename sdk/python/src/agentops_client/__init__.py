"""The Agent Ops Platform's Python client: local evaluation, batching, and never a broken agent."""

from agentops_client._version import __version__
from agentops_client.aio import AsyncAgentOps
from agentops_client.client import AgentOps, Prompt

__all__ = ["AgentOps", "AsyncAgentOps", "Prompt", "__version__"]
