"""A site's members' calls (``/t/sites/{site_id}``, ``.../members``, ``.../calls-token``): the
site as its member sees it, the members, inviting one (with the e-mail), changing a role,
removing a member, a new calls token for the phone system. Each resolves the caller's scope of
the site in the same connection or transaction as its work (``service.tracking.in_site``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from service.runtime import Runtime
from service.tracking.access import Actor
from service.tracking.calls import new_calls_token
from service.tracking.in_site import change_in_site, read_in_site
from service.tracking.mail import enqueue_mail, mail_enabled
from service.tracking.members import (
    Invited,
    Member,
    MemberRole,
    change_role,
    invite_member,
    list_members,
    remove_member,
)
from service.tracking.people_texts import INVITED_MESSAGE, INVITED_SUBJECT, ROLE_NAMES
from service.tracking.scope import SiteScope
from service.tracking.sites import Site


@dataclass(frozen=True, slots=True)
class Invitation:
    invited: Invited
    #: An e-mail tells the person (queued in the invitation's transaction).
    notified: bool


async def _site_and_scope(
    _conn: AsyncConnection, site: Site, scope: SiteScope
) -> tuple[Site, SiteScope]:
    return site, scope


async def site_as_member(runtime: Runtime, actor: Actor, site_id: int) -> tuple[Site, SiteScope]:
    """The site and the caller's scope of it (its role)."""
    return await read_in_site(runtime, actor, site_id, _site_and_scope)


async def site_members(runtime: Runtime, actor: Actor, site_id: int) -> list[Member]:
    return await read_in_site(
        runtime, actor, site_id, lambda conn, _site, scope: list_members(conn, scope)
    )


async def invite_person(
    runtime: Runtime,
    actor: Actor,
    site_id: int,
    *,
    email: str,
    role: MemberRole,
    name: str | None,
    language: str | None,
    now: datetime,
) -> Invitation:
    """Invite ``email`` (created when new) and queue the e-mail, in one transaction."""

    async def work(conn: AsyncConnection, site: Site, scope: SiteScope) -> Invitation:
        invited = await invite_member(
            conn,
            scope,
            email=email,
            role=role,
            name=name,
            language=language or runtime.settings.admin_default_language,
            now=now,
        )
        notified = await _notify(runtime, conn, site, invited, actor.name)
        return Invitation(invited, notified)

    return await change_in_site(runtime, actor, site_id, work)


async def _notify(
    runtime: Runtime, conn: AsyncConnection, site: Site, invited: Invited, inviter: str
) -> bool:
    """The invitation e-mail, in the invitation's transaction (sent if and only if it commits)."""
    if runtime.queue is None or not mail_enabled(runtime.settings):
        return False
    person = invited.member.person
    language = person.language
    text = INVITED_MESSAGE[language].format(
        name=person.name,
        inviter=inviter,
        site=site.name,
        role=ROLE_NAMES[language][invited.member.role],
        link=runtime.settings.public_origin,
    )
    await enqueue_mail(
        runtime.queue,
        to=person.email,
        subject=INVITED_SUBJECT[language].format(site=site.name),
        text=text,
        key=f"invite:{site.id}:{person.id}:{invited.member.created_at.timestamp()}",
        conn=conn,
    )
    return True


async def change_member_role(
    runtime: Runtime,
    actor: Actor,
    site_id: int,
    person_id: int,
    role: MemberRole,
    *,
    now: datetime,
) -> Member:
    return await change_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: change_role(conn, scope, person_id, role, now=now),
    )


async def remove_site_member(
    runtime: Runtime, actor: Actor, site_id: int, person_id: int, *, now: datetime
) -> None:
    await change_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, _site, scope: remove_member(conn, scope, person_id, now=now),
    )


async def renew_calls_token(runtime: Runtime, actor: Actor, site_id: int, *, now: datetime) -> str:
    """A new calls token for the site's phone system (the old one stops)."""
    return await change_in_site(
        runtime,
        actor,
        site_id,
        lambda conn, site, scope: new_calls_token(conn, scope, site, now=now),
    )
