import { create } from "@bufbuild/protobuf";
import {
  GetAnnouncementBannersResponseSchema,
  ServiceBannerSchema,
  type GetAnnouncementBannersResponse,
  type ServiceBanner,
} from "../../gen/coder/agent/v2/agent_pb.js";

/** The deployment's banners, as `--banners FILE` gives them (agent-api.md §2.9). */
export interface BannerSettings {
  serviceBanner?: { enabled: boolean; message: string; backgroundColor: string };
  announcementBanners?: { enabled: boolean; message: string; backgroundColor: string }[];
}

/** GetServiceBanner and GetAnnouncementBanners: read-only, from configuration; no banners by default. */
export function bannersApi(settings: BannerSettings) {
  return {
    getServiceBanner(): ServiceBanner {
      return create(ServiceBannerSchema, settings.serviceBanner ?? {});
    },
    getAnnouncementBanners(): GetAnnouncementBannersResponse {
      return create(GetAnnouncementBannersResponseSchema, { announcementBanners: settings.announcementBanners ?? [] });
    },
  };
}
