"""Public plan routes (API §2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.responses import Response

from kupe.schemas.common import ItemList
from kupe.schemas.plan import Plan
from kupe.server.api.deps import RuntimeDep
from kupe.server.api.errors import error_responses
from kupe.server.api.responses import json_response
from kupe.server.services.plan import plan_view

router = APIRouter(prefix="/api/v1/plans", tags=["plans"])


@router.get("", response_model=ItemList[Plan], summary="List plans", responses=error_responses())
async def list_plans(runtime: RuntimeDep) -> Response:
    plans = sorted(runtime.plans.all(), key=lambda p: p.name)
    return json_response(ItemList[Plan](items=[plan_view(plan) for plan in plans]))


@router.get("/{name}", response_model=Plan, summary="Get a plan", responses=error_responses(404))
async def get_plan(name: Annotated[str, Path()], runtime: RuntimeDep) -> Response:
    return json_response(plan_view(runtime.plans.get(name)))
