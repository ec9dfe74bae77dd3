"""Members of a tenant (API §6). They live on the tenant: every member write gives the tenant a
new resourceVersion, and If-Match is checked against the tenant's ETag."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from kupe.core.clock import Clock
from kupe.core.errors import AlreadyExists, BadRequest, LastAdmin, NotFound, ValidationFailed
from kupe.core.etag import check_if_match
from kupe.core.pagination import cut_page, page_query
from kupe.schemas.tenant import MemberCreate, MemberUpdate
from kupe.server.db.models import Member, Tenant
from kupe.server.db.repositories.member import MemberRepository
from kupe.server.services.auth import ROLES, Principal
from kupe.server.services.tenant import TenantService, normalise_email


class MemberService:
    def __init__(self, tenants: TenantService, clock: Clock) -> None:
        self.tenants = tenants
        self.clock = clock

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> tuple[list[Member], str | None]:
        after, fetch = page_query(continue_token, limit)
        rows = await MemberRepository(session, principal.tenant_id).list(after=after, limit=fetch)
        return cut_page(rows, limit, lambda member: member.email)

    async def get(self, session: AsyncSession, principal: Principal, email: str) -> Member:
        return await self._get(session, principal.tenant_id, _path_email(email))

    async def add(
        self,
        session: AsyncSession,
        principal: Principal,
        body: MemberCreate,
        *,
        if_match: str | None,
    ) -> Member:
        """Add a member; 409 when the (case-insensitive) email is already one."""
        principal.require_admin()
        tenant = await self.tenants.row(session, principal.tenant_id, for_update=True)
        await self._check_version(session, tenant, if_match)
        return await self.add_member(session, tenant, body.email, body.role)

    async def add_member(
        self, session: AsyncSession, tenant: Tenant, email: str, role: str
    ) -> Member:
        """Add a member (API and operator); bumps the tenant's resourceVersion."""
        if role not in ROLES:
            raise ValidationFailed("role must be admin or readonly", field="role")
        address = normalise_email(email)
        repo = MemberRepository(session, tenant.id)
        if await repo.get(address) is not None:
            raise AlreadyExists(f"{address} is already a member", field="email")
        member = Member(tenant_id=tenant.id, email=address, role=role, created_at=self.clock.now())
        repo.add(member)
        try:
            await session.flush()
        except IntegrityError:
            raise AlreadyExists(f"{address} is already a member", field="email") from None
        await self.tenants.bump(session, tenant)
        return member

    async def update(
        self,
        session: AsyncSession,
        principal: Principal,
        email: str,
        body: MemberUpdate,
        *,
        if_match: str | None,
    ) -> Member:
        """Change a member's role; demoting the last admin is refused (409 LAST_ADMIN). A
        demotion is a security operation: it works while the tenant is suspended."""
        if body.role == "admin":
            principal.require_admin()
        else:
            principal.require_security_admin()
        tenant = await self.tenants.row(session, principal.tenant_id, for_update=True)
        await self._check_version(session, tenant, if_match)
        repo = MemberRepository(session, principal.tenant_id)
        member = await self._get(session, principal.tenant_id, _path_email(email))
        if member.role == body.role:
            return member
        if member.role == "admin" and await repo.count_admins() <= 1:
            raise LastAdmin(f"{member.email} is the tenant's last admin and cannot be demoted")
        await repo.set_role(member.email, body.role)
        member.role = body.role
        await self.tenants.bump(session, tenant)
        return member

    async def remove(
        self, session: AsyncSession, principal: Principal, email: str, *, if_match: str | None
    ) -> None:
        """Remove a member; not yourself (400), not the last admin (409 LAST_ADMIN). Works while
        the tenant is suspended (a security operation)."""
        principal.require_security_admin()
        tenant = await self.tenants.row(session, principal.tenant_id, for_update=True)
        await self._check_version(session, tenant, if_match)
        address = _path_email(email)
        if principal.member_email == address:
            raise BadRequest(
                "You cannot remove yourself from the tenant", code="CANNOT_REMOVE_SELF"
            )
        repo = MemberRepository(session, principal.tenant_id)
        member = await self._get(session, principal.tenant_id, address)
        if member.role == "admin" and await repo.count_admins() <= 1:
            raise LastAdmin(f"{member.email} is the tenant's last admin and cannot be removed")
        await repo.delete(member.email)
        await self.tenants.bump(session, tenant)

    async def _check_version(
        self, session: AsyncSession, tenant: Tenant, if_match: str | None
    ) -> None:
        if if_match is not None:
            check_if_match(if_match, await self.tenants.version(session, tenant.id))

    @staticmethod
    async def _get(session: AsyncSession, tenant_id: str, email: str) -> Member:
        member = await MemberRepository(session, tenant_id).get(email)
        if member is None:
            raise NotFound(f"Member {email!r} not found")
        return member


def _path_email(value: str) -> str:
    """An email from the URL: validated and lower-cased like stored ones."""
    return normalise_email(value)
