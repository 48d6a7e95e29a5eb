"""A site's members: who may see the site's dashboard, and in which role.

``owner`` manages the site's people (invite, remove, change roles) and its call token,
``editor`` also changes intents' statuses, ``viewer`` reads. Platform admins act as owners of
every site. A site always keeps at least one owner: a change that would leave none is refused
(409 ``last_owner``). Changes of one site's members are serialised by a write on the site's
row, so two owners demoting each other at the same moment cannot both succeed.

Every function takes the caller's scope (``service/tracking/access.py``) and runs in the
caller's transaction; each change is an audit row (``site.member.*``, subject ``site:<id>``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import NotFound
from service.audit import record_audit
from service.db.tables.tracking import site_members, sites
from service.errors import ApiError
from service.tracking.access import require_manage
from service.tracking.people import Person, add_person, find_person, people_by_id
from service.tracking.scope import SiteScope, site_values, where_site

MemberRole = Literal["owner", "editor", "viewer"]
MEMBER_ROLES: tuple[MemberRole, ...] = ("owner", "editor", "viewer")


@dataclass(frozen=True, slots=True)
class Member:
    person: Person
    role: MemberRole
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Invited:
    member: Member
    #: The person did not exist before this invitation.
    new_person: bool


def member_out(member: Member) -> dict[str, Any]:
    person = member.person
    return {
        "person_id": person.id,
        "email": person.email,
        "name": person.name,
        "language": person.language,
        "role": member.role,
        "active": person.active,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    }


async def _lock_site(conn: AsyncConnection, scope: SiteScope) -> None:
    """Serialise member changes of the site: a write on its row (a row lock on MariaDB, the
    database's write lock on SQLite) held until the transaction ends."""
    await conn.execute(
        update(sites).where(sites.c.id == scope.site_id).values(updated_at=sites.c.updated_at)
    )


async def _owners(conn: AsyncConnection, scope: SiteScope) -> int:
    # A locking read: under MariaDB's REPEATABLE READ a plain one would count from the snapshot
    # taken before the site's lock was granted, missing a change committed while it waited.
    query = (
        select(site_members.c.person_id)
        .where(where_site(site_members, scope), site_members.c.role == "owner")
        .with_for_update()
    )
    return len((await conn.execute(query)).all())


async def _row(conn: AsyncConnection, scope: SiteScope, person_id: int, *, lock: bool) -> Any:
    query = select(site_members).where(
        where_site(site_members, scope), site_members.c.person_id == person_id
    )
    return (await conn.execute(query.with_for_update() if lock else query)).first()


async def list_members(conn: AsyncConnection, scope: SiteScope) -> list[Member]:
    """Every member of the site (any member may read the list), owners first."""
    rows = (await conn.execute(select(site_members).where(where_site(site_members, scope)))).all()
    found = await people_by_id(conn, [int(row.person_id) for row in rows])
    members = [
        Member(
            found[int(row.person_id)], cast(MemberRole, row.role), row.created_at, row.updated_at
        )
        for row in rows
        if int(row.person_id) in found
    ]
    order = {role: index for index, role in enumerate(MEMBER_ROLES)}
    return sorted(members, key=lambda m: (order[m.role], m.person.email))


async def get_member(
    conn: AsyncConnection, scope: SiteScope, person_id: int, *, lock: bool = False
) -> Member:
    row = await _row(conn, scope, person_id, lock=lock)
    people = await people_by_id(conn, [person_id]) if row is not None else {}
    if row is None or person_id not in people:
        raise NotFound("no such member of this site")
    return Member(people[person_id], cast(MemberRole, row.role), row.created_at, row.updated_at)


async def invite_member(
    conn: AsyncConnection,
    scope: SiteScope,
    *,
    email: str,
    role: MemberRole,
    now: datetime,
    name: str | None = None,
    language: str = "tr",
) -> Invited:
    """Add the person with ``email`` (created when new) to the site; 409 ``already_member``
    when they are one (their role is changed with ``change_role``)."""
    require_manage(scope)
    await _lock_site(conn, scope)
    person = await find_person(conn, email)
    new_person = person is None
    if person is None:
        person = await add_person(
            conn,
            email=email,
            name=name or email.strip().partition("@")[0] or email,
            language=language,
            now=now,
            actor=scope.actor,
        )
    if await _row(conn, scope, person.id, lock=True) is not None:
        raise ApiError(
            409,
            "already_member",
            "this person is already a member of the site; change their role instead",
            {"person_id": person.id},
        )
    await conn.execute(
        insert(site_members).values(
            **site_values(scope, person_id=person.id, role=role, created_at=now, updated_at=now)
        )
    )
    await _audit(
        conn, scope, "site.member.added", person, {"role": role}, now, after={"role": role}
    )
    return Invited(Member(person, role, now, now), new_person)


async def change_role(
    conn: AsyncConnection, scope: SiteScope, person_id: int, role: MemberRole, *, now: datetime
) -> Member:
    require_manage(scope)
    await _lock_site(conn, scope)
    member = await get_member(conn, scope, person_id, lock=True)
    if member.role == role:
        return member
    if member.role == "owner" and await _owners(conn, scope) <= 1:
        raise _last_owner()
    await conn.execute(
        update(site_members)
        .where(and_(where_site(site_members, scope), site_members.c.person_id == person_id))
        .values(role=role, updated_at=now)
    )
    details = {"from": member.role, "to": role}
    await _audit(
        conn,
        scope,
        "site.member.role_changed",
        member.person,
        details,
        now,
        before={"role": member.role},
        after={"role": role},
    )
    return Member(member.person, role, member.created_at, now)


async def remove_member(
    conn: AsyncConnection, scope: SiteScope, person_id: int, *, now: datetime
) -> Member:
    require_manage(scope)
    await _lock_site(conn, scope)
    member = await get_member(conn, scope, person_id, lock=True)
    if member.role == "owner" and await _owners(conn, scope) <= 1:
        raise _last_owner()
    await conn.execute(
        delete(site_members).where(
            and_(where_site(site_members, scope), site_members.c.person_id == person_id)
        )
    )
    await _audit(
        conn,
        scope,
        "site.member.removed",
        member.person,
        {"role": member.role},
        now,
        before={"role": member.role},
    )
    return member


def _last_owner() -> ApiError:
    return ApiError(
        409, "last_owner", "a site keeps at least one owner: make another member owner first"
    )


async def _audit(
    conn: AsyncConnection,
    scope: SiteScope,
    action: str,
    person: Person,
    details: dict[str, Any],
    now: datetime,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """``before``/``after``: the membership's role (None: no membership)."""
    await record_audit(
        conn,
        actor=scope.actor,
        action=action,
        subject=f"site:{scope.site_id}",
        details={"person": person.id, **details},
        ts=now,
        site_id=scope.site_id,
        before=before,
        after=after,
    )
