// Members tab (spec invite_user): invite by email, username or share link (with approval), pending approvals, roles,
// remove. Members are live from WatchNetwork; invites come from ListInvites (admins).
import { InviteType, MemberState, Role } from "@meshai/client";
import type { InviteMemberResponse, Member } from "@meshai/client";
import { useState } from "preact/hooks";

import { api } from "../../shared/api";
import { dateTime, roleLabel } from "../../shared/format";
import { Badge, Button, Card, Confirm, CopyButton, Empty, ErrorBanner, Field, Notice, useAsync, TableWrap } from "../../shared/ui";
import type { TabProps } from "./network";

const ROLES = [Role.ADMIN, Role.MEMBER, Role.GUEST];

export function MembersTab({ networkId, view, isAdmin, user }: TabProps) {
  const members = [...view.members.values()].filter((m) => m.state !== MemberState.REMOVED);
  const pending = members.filter((m) => m.state === MemberState.PENDING_APPROVAL);
  const active = members.filter((m) => m.state === MemberState.ACTIVE);
  const invites = useAsync(() => (isAdmin ? api().network.listInvites({ networkId }).then((r) => r.invites) : Promise.resolve([])), [networkId, isAdmin]);
  return (
    <div class="stack">
      {isAdmin && <InviteCard networkId={networkId} onInvited={invites.reload} />}
      {pending.length > 0 && (
        <Card title={`Waiting for approval (${pending.length})`}>
          <ul class="list" aria-label="Waiting for approval">
            {pending.map((m) => (
              <PendingRow key={m.userId} member={m} networkId={networkId} isAdmin={isAdmin} />
            ))}
          </ul>
        </Card>
      )}
      <Card title={`Members (${active.length})`}>
        {active.length === 0 ? (
          <Empty title="No members yet" />
        ) : (
          <TableWrap label="Members">
            <table class="responsive" aria-label="Members">
              <thead>
                <tr>
                  <th>Member</th>
                  <th>Role</th>
                  <th>Joined</th>
                  {isAdmin && <th>Actions</th>}
                </tr>
              </thead>
              <tbody>
                {active.map((m) => (
                  <MemberRow key={m.userId} member={m} networkId={networkId} isAdmin={isAdmin} isSelf={m.userId === user.userId} />
                ))}
              </tbody>
            </table>
          </TableWrap>
        )}
      </Card>
      {isAdmin && (
        <Card title="Open invites">
          <ErrorBanner error={invites.error} onRetry={invites.reload} />
          {invites.data && invites.data.filter((i) => !i.revoked).length === 0 ? (
            <p class="muted">No open invites.</p>
          ) : (
            <ul class="list">
              {invites.data?.filter((i) => !i.revoked).map((i) => (
                <li key={i.inviteId} class="list-row">
                  <div>
                    <strong>{i.inviteType === InviteType.SHARE_LINK_WITH_APPROVAL ? "Share link" : i.invitee}</strong>
                    <div class="muted small">
                      {i.inviteType === InviteType.EMAIL ? "Email" : i.inviteType === InviteType.USERNAME ? "Username" : "Anyone with the link, after approval"} · {roleLabel[i.role]} · expires {dateTime(i.expireTime)}
                    </div>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </Card>
      )}
    </div>
  );
}

function InviteCard({ networkId, onInvited }: { networkId: string; onInvited: () => void }) {
  const [type, setType] = useState<InviteType>(InviteType.EMAIL);
  const [invitee, setInvitee] = useState("");
  const [role, setRole] = useState<Role>(Role.MEMBER);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [created, setCreated] = useState<InviteMemberResponse>();
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setCreated(undefined);
    try {
      setCreated(await api().network.inviteMember({ networkId, inviteType: type, invitee: type === InviteType.SHARE_LINK_WITH_APPROVAL ? "" : invitee.trim(), role }));
      setInvitee("");
      onInvited();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Card title="Invite people">
      <form class="stack" onSubmit={submit}>
        <div class="segmented" role="radiogroup" aria-label="Invite by">
          {[
            [InviteType.EMAIL, "Email"],
            [InviteType.USERNAME, "Username"],
            [InviteType.SHARE_LINK_WITH_APPROVAL, "Share link"],
          ].map(([t, label]) => (
            <button key={t} type="button" role="radio" aria-checked={type === t} class={type === t ? "seg seg-on" : "seg"} onClick={() => setType(t as InviteType)}>
              {label}
            </button>
          ))}
        </div>
        <div class="grid-invite">
          {type !== InviteType.SHARE_LINK_WITH_APPROVAL ? (
            <Field label={type === InviteType.EMAIL ? "Email address" : "Username"}>
              {(id) =>
                type === InviteType.EMAIL ? (
                  <input id={id} type="email" required value={invitee} onInput={(e) => setInvitee(e.currentTarget.value)} placeholder="friend@example.com" />
                ) : (
                  <input id={id} type="text" required value={invitee} onInput={(e) => setInvitee(e.currentTarget.value)} placeholder="alex" />
                )
              }
            </Field>
          ) : (
            <p class="muted small">Anyone who opens the link can ask to join; an admin approves them here (unless the network auto-approves their domain).</p>
          )}
          <Field label="Role">
            {(id) => (
              <select id={id} value={role} onChange={(e) => setRole(Number(e.currentTarget.value) as Role)}>
                {ROLES.map((r) => (
                  <option key={r} value={r}>
                    {roleLabel[r]}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Button type="submit" variant="primary" busy={busy}>
            {type === InviteType.SHARE_LINK_WITH_APPROVAL ? "Create link" : "Send invite"}
          </Button>
        </div>
        <ErrorBanner error={error} />
        {created && (
          <Notice tone="good">
            <div class="stack">
              <span>
                Invite created{created.invite?.invitee ? ` for ${created.invite.invitee}` : ""}. Send this link (shown once):
              </span>
              <div class="row">
                <input readOnly value={created.inviteLink} class="mono" aria-label="Invite link" data-testid="invite-link" onFocus={(e) => e.currentTarget.select()} />
                <CopyButton text={created.inviteLink} />
              </div>
            </div>
          </Notice>
        )}
      </form>
    </Card>
  );
}

function PendingRow({ member: m, networkId, isAdmin }: { member: Member; networkId: string; isAdmin: boolean }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  return (
    <li class="list-row" data-user-id={m.userId}>
      <div>
        <strong>{m.displayName || m.email}</strong>
        <div class="muted small">
          {m.email} · asked for {roleLabel[m.role]}
        </div>
        <ErrorBanner error={error} />
      </div>
      {isAdmin && (
        <Button
          variant="primary"
          busy={busy}
          aria-label={`Approve ${m.email}`}
          onClick={async () => {
            setBusy(true);
            setError(undefined);
            try {
              await api().network.approveMember({ networkId, userId: m.userId });
            } catch (e) {
              setError(e);
            } finally {
              setBusy(false);
            }
          }}
        >
          Approve
        </Button>
      )}
    </li>
  );
}

function MemberRow({ member: m, networkId, isAdmin, isSelf }: { member: Member; networkId: string; isAdmin: boolean; isSelf: boolean }) {
  const [removing, setRemoving] = useState(false);
  const [error, setError] = useState<unknown>();
  const changeRole = async (role: Role) => {
    setError(undefined);
    try {
      await api().network.updateMemberRole({ networkId, userId: m.userId, role });
    } catch (e) {
      setError(e);
    }
  };
  return (
    <tr data-user-id={m.userId}>
      <td data-label="Member">
        <strong>{m.displayName || m.email}</strong>
        {isSelf && <Badge>you</Badge>}
        <div class="muted small">{m.email}</div>
        <ErrorBanner error={error} />
      </td>
      <td data-label="Role">
        {isAdmin ? (
          <select aria-label={`Role of ${m.email}`} value={m.role} onChange={(e) => changeRole(Number(e.currentTarget.value) as Role)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {roleLabel[r]}
              </option>
            ))}
          </select>
        ) : (
          roleLabel[m.role]
        )}
      </td>
      <td data-label="Joined">{dateTime(m.joinTime)}</td>
      {isAdmin && (
        <td data-label="Actions">
          <Button variant="danger" onClick={() => setRemoving(true)} aria-label={`Remove ${m.email}`}>
            Remove
          </Button>
          <Confirm open={removing} title={`Remove ${m.email}?`} confirm="Remove member" onClose={() => setRemoving(false)} onConfirm={() => api().network.removeMember({ networkId, userId: m.userId })}>
            <p>They lose access to this network at once; their devices here are revoked and their API keys stop working.</p>
          </Confirm>
        </td>
      )}
    </tr>
  );
}
