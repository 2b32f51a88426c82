/**
 * Whether a process with this pid exists (signal 0 checks without sending anything). EPERM means
 * it exists but belongs to someone else. Used to tell a stale lock or server file from a live one.
 */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
