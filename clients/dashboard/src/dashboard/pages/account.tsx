import type { User } from "@meshai/client";

export function AccountPage({ user }: { user: User; code: string }) {
  return <main class="page narrow"><h1>{user.email}</h1></main>;
}
