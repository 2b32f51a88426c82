import type { Queryable } from "../database.js";
import type { UserStatus } from "../enums.js";
import { selectList, type ColumnList } from "./columns.js";

/** A `users` row (the columns agentgate uses). */
export interface User {
  id: string;
  email: string;
  username: string;
  name: string;
  avatarUrl: string;
  createdAt: Date;
  updatedAt: Date;
  status: UserStatus;
  rbacRoles: string[];
  deleted: boolean;
}

const USER_COLUMNS: ColumnList = [
  ["id", "id"], ["email", "email"], ["username", "username"], ["name", "name"],
  ["avatar_url", "avatarUrl"], ["created_at", "createdAt"], ["updated_at", "updatedAt"],
  ["status", "status"], ["rbac_roles", "rbacRoles"], ["deleted", "deleted"],
];

/** The non-deleted user with this id. */
export async function getUserById(q: Queryable, id: string): Promise<User | undefined> {
  const { rows } = await q.query<User>(`SELECT ${selectList("u", USER_COLUMNS)} FROM users u WHERE u.id = $1 AND NOT u.deleted`, [id]);
  return rows[0];
}

/** The non-deleted user with this username, compared case-insensitively as the unique index does. */
export async function getUserByUsername(q: Queryable, username: string): Promise<User | undefined> {
  const { rows } = await q.query<User>(
    `SELECT ${selectList("u", USER_COLUMNS)} FROM users u WHERE lower(u.username) = lower($1) AND NOT u.deleted`,
    [username],
  );
  return rows[0];
}

/** Inserts a user and returns it. */
export async function insertUser(
  q: Queryable,
  p: { id: string; username: string; email?: string; name?: string; now: Date },
): Promise<User> {
  const { rows } = await q.query<User>(
    `INSERT INTO users AS u (id, username, email, name, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $5)
     RETURNING ${selectList("u", USER_COLUMNS)}`,
    [p.id, p.username, p.email ?? "", p.name ?? "", p.now],
  );
  return rows[0]!;
}
