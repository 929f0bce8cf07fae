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
    projects only (``queues_complete`` false: lower bounds, the queues were read in part)."""
    tier = user.effective_tier()
    max_rank = Tier.LEAD.rank if tier is None else tier.rank
    leases = await gw.store.my_leases(user.id)
    if not user.projects:  # works on no project: nothing of any queue is theirs
        queues, complete = {t.value: 0 for t in Tier if t.rank <= max_rank}, True
    elif not user.all_projects:
        queues, complete = await gw.store.project_queue_sizes(max_rank, user.projects)
    else:
        queues, complete = await gw.store.queue_sizes(max_rank), True
    return FastJSONResponse(
        {
            "id": user.id,
            "name": user.name,
            "role": user.role.value,
            "tier": tier.value if tier else None,
            "skills": user.skills,
            "projects": user.projects,
            "queues": queues,
            "queues_complete": complete,
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
