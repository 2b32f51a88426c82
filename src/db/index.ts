/**
 * agentgate's storage layer: what the rest of the server imports. Query functions live per table
 * in ./queries (imported from there, or as namespaces through ./queries/index.js).
 */
export { openDatabase, DEFAULT_DATA_DIR, type Database, type OpenDatabaseOptions, type Queryable, type Transaction } from "./database.js";
export { migrate, loadMigrations, migrationsDir, type Migration } from "./migrate.js";
export {
  MAX_PAYLOAD_BYTES,
  MAX_CHANNEL_BYTES,
  DEFAULT_SUBSCRIBER_QUEUE,
  PubsubDroppedEventsError,
  PubsubListenerLostError,
  PubsubPayloadError,
  type Pubsub,
} from "./pubsub.js";
export { isUniqueViolation, isCheckViolation, isForeignKeyViolation, sqlState } from "./errors.js";
export * from "./enums.js";
