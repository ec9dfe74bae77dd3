"""Public plan routes (API §2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from kupe.core.pagination import cut_page, decode_continue
from kupe.schemas.common import ItemList
from kupe.schemas.plan import Plan
from kupe.server.api.deps import RuntimeDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response
from kupe.server.services.plan import plan_view

router = APIRouter(prefix="/api/v1/plans", tags=["plans"])


@router.get("", response_model=ItemList[Plan], summary="List plans", responses=error_responses(400))
async def list_plans(
    runtime: RuntimeDep,
    limit: Annotated[int | None, Query(ge=1, le=1000, description="Page size.")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page.")
    ] = None,
) -> Response:
    plans = sorted(runtime.plans.all(), key=lambda p: p.name)
    if continue_:
        after = decode_continue(continue_)
        plans = [plan for plan in plans if plan.name > after]
    page, token = cut_page(plans, limit, key=lambda plan: plan.name)
    return json_response(ItemList[Plan](items=[plan_view(plan) for plan in page], continue_=token))


@router.get("/{name}", response_model=Plan, summary="Get a plan", responses=error_responses(404))
async def get_plan(name: Annotated[str, Path()], runtime: RuntimeDep) -> Response:
    return json_response(plan_view(runtime.plans.get(name)))
