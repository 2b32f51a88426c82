/** A UUID in its text form, any version, either case. */
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `text` is a UUID in its 36-character text form. */
export function isUuid(text: string): boolean {
  return UUID_PATTERN.test(text);
}
