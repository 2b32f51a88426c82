import { readFile } from "node:fs/promises";
import { create, fromJson, type JsonValue } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import {
  GetAnnouncementBannersResponseSchema,
  ServiceBannerSchema,
  type BannerConfig,
  type GetAnnouncementBannersResponse,
  type ServiceBanner,
} from "../../gen/coder/agent/v2/agent_pb.js";
import type { AgentApiContext } from "./context.js";

/** The deployment's banners, as `--banners FILE` gives them; none by default. */
export interface BannerSettings {
  serviceBanner?: ServiceBanner;
  announcementBanners?: BannerConfig[];
}

/** The keys a banners file may have, in protobuf JSON's camelCase or the proto's own names. */
const FILE_KEYS = {
  serviceBanner: ["serviceBanner", "service_banner"],
  announcementBanners: ["announcementBanners", "announcement_banners"],
} as const;

/**
 * Reads a banners file: `{"serviceBanner": ServiceBanner, "announcementBanners": [BannerConfig]}`
 * in protobuf JSON, each part parsed by its message schema so a wrong type or an unknown field
 * fails here, at start, naming the field, instead of reaching agents. Throws with the file's name.
 */
export async function readBannersFile(path: string): Promise<BannerSettings> {
  try {
    return parseBanners(JSON.parse(await readFile(path, "utf8")) as JsonValue);
  } catch (err) {
    throw new Error(`--banners ${path}: ${(err as Error).message}`);
  }
}

function parseBanners(json: JsonValue): BannerSettings {
  if (json === null || typeof json !== "object" || Array.isArray(json)) throw new Error("want a JSON object");
  const known: readonly string[] = [...FILE_KEYS.serviceBanner, ...FILE_KEYS.announcementBanners];
  for (const key of Object.keys(json)) {
    if (!known.includes(key)) throw new Error(`unknown key "${key}" (want serviceBanner, announcementBanners)`);
  }
  const pick = (names: readonly string[]) => names.map((n) => json[n]).find((v) => v !== undefined);
  const service = pick(FILE_KEYS.serviceBanner);
  const announcements = pick(FILE_KEYS.announcementBanners);
  return {
    ...(service === undefined ? {} : { serviceBanner: fromJson(ServiceBannerSchema, service) }),
    ...(announcements === undefined
      ? {}
      : { announcementBanners: fromJson(GetAnnouncementBannersResponseSchema, { announcementBanners: announcements }).announcementBanners }),
  };
}

/** GetServiceBanner and GetAnnouncementBanners: read-only, from configuration, after the caller re-read. */
export function bannersApi(api: AgentApiContext) {
  return {
    async getServiceBanner(_req: unknown, ctx: HandlerContext): Promise<ServiceBanner> {
      await api.loadCaller(ctx);
      return api.banners.serviceBanner ?? create(ServiceBannerSchema);
    },
    async getAnnouncementBanners(_req: unknown, ctx: HandlerContext): Promise<GetAnnouncementBannersResponse> {
      await api.loadCaller(ctx);
      return create(GetAnnouncementBannersResponseSchema, { announcementBanners: api.banners.announcementBanners ?? [] });
    },
  };
}
