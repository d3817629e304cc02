// What the operator pages share: owners' emails by user id.
import { api } from "./app.js";

export async function ownersById() {
  const owners = new Map();
  const { users } = await api("GET", "/api/operator/users?limit=1000");
  for (const user of users) owners.set(user.id, user.email);
  return owners;
}
