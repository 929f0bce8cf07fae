"""Who am I: identity, tier, skills, visible queue sizes and live leases."""

from __future__ import annotations

from fastapi import APIRouter

from loupe.gateway.context import GatewayDep, Me
from loupe.gateway.responses import FastJSONResponse
from loupe.gateway.views import ms_to_iso
from loupe.schemas import Tier

router = APIRouter(prefix="/v1", tags=["me"])


@router.get("/me")
async def me(gw: GatewayDep, user: Me) -> FastJSONResponse:
    """The caller's identity and the work visible to them: queue sizes count the caller's
    projects only (exact: ``queues_complete`` is always true, kept for clients that read it)."""
    tier = user.effective_tier()
    max_rank = Tier.LEAD.rank if tier is None else tier.rank
    leases = await gw.store.my_leases(user.id)
    projects = None if user.all_projects else list(user.projects)
    queues = await gw.store.queue_sizes(max_rank, projects)
    return FastJSONResponse(
        {
            "id": user.id,
            "name": user.name,
            "role": user.role.value,
            "tier": tier.value if tier else None,
            "skills": user.skills,
            "projects": user.projects,
            "queues": queues,
            "queues_complete": True,
            "leases": [
                {
                    "task_id": lease.task_id,
                    "lease_id": lease.lease_id,
                    "expires_at": ms_to_iso(lease.expires_ms),
                }
                for lease in leases
            ],
        }
    )
