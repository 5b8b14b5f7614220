export function InvitePage(_: { token: string }) {
  return <main class="page narrow"><h1>Invite</h1></main>;
}
