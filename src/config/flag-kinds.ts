import { availableParallelism } from "node:os";
import { z } from "zod";
import { parseDuration } from "../duration.js";
import type { FlagKind } from "./flag.js";

/** A config file may write a number where the text form takes digits: `max-streams-per-agent: 1024`. */
const numberAsText = (v: unknown) => (typeof v === "number" ? String(v) : v);

/** A kind whose config-file value is its text form (or a number written as such). */
function textual<T>(text: z.ZodType<T>, extra: Omit<FlagKind<T>, "text" | "file"> = {}): FlagKind<T> {
  return { text, file: z.preprocess(numberAsText, text), ...extra };
}

const WANT_TEXT = "want text";

/** Any text. */
export const text: FlagKind<string> = textual(z.string({ error: WANT_TEXT }), { placeholder: "TEXT" });

/** A path to a file. */
export const filePath: FlagKind<string> = textual(z.string({ error: WANT_TEXT }).min(1, "want a path"), { placeholder: "FILE", complete: "file" });

/** A path to a folder. */
export const folderPath: FlagKind<string> = textual(z.string({ error: WANT_TEXT }).min(1, "want a path"), { placeholder: "DIR", complete: "file" });

/** On or off: given or not on the command line; true/false (or 1/0) in the environment and the file. */
export const onOff: FlagKind<boolean> = {
  text: z.enum(["true", "false", "1", "0"], { error: "want true or false" }).transform((v) => v === "true" || v === "1"),
  file: z.boolean({ error: "want true or false" }),
  isSwitch: true,
};

/** A positive duration in milliseconds: "500ms", "15s", "1m30s". */
export const duration: FlagKind<number> = textual(
  z.string({ error: WANT_TEXT }).transform((s, ctx) => {
    const WANT = "want a duration like 500ms, 15s or 1m30s";
    let ms: number;
    try {
      ms = parseDuration(s);
    } catch {
      ctx.addIssue({ code: "custom", message: WANT });
      return z.NEVER;
    }
    if (ms <= 0) ctx.addIssue({ code: "custom", message: "want a duration above zero" });
    return ms;
  }),
  { placeholder: "DURATION" },
);

/** A whole number of at least `min`. */
export function wholeNumber(min: number, want = `want a whole number of at least ${min}`): FlagKind<number> {
  return textual(
    z.string({ error: WANT_TEXT }).regex(/^\d+$/, want).transform(Number).pipe(z.number().int().min(min, want).max(Number.MAX_SAFE_INTEGER, want)),
    { placeholder: "N" },
  );
}

/** Binary unit suffixes a byte size may carry. */
const BYTE_UNITS: Record<string, number> = { "": 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** A size in bytes: "65536", "512KiB", "64MiB", "1GiB"; 0 is allowed where `min` is 0. */
export function byteSize(min: number): FlagKind<number> {
  const want = "want a size like 65536, 512KiB, 64MiB or 1GiB";
  return textual(
    z.string({ error: WANT_TEXT }).transform((s, ctx) => {
      const m = /^(\d+)\s*(B|KiB|MiB|GiB)?$/.exec(s.trim());
      const bytes = m === null ? NaN : Number(m[1]) * BYTE_UNITS[m[2] ?? ""]!;
      if (!Number.isSafeInteger(bytes) || bytes < min) {
        ctx.addIssue({ code: "custom", message: m === null ? want : `want at least ${min} bytes` });
        return z.NEVER;
      }
      return bytes;
    }),
    { placeholder: "SIZE" },
  );
}

/** One of a few words; help lists them. */
export function oneOf<const T extends readonly [string, ...string[]]>(values: T, placeholder: string): FlagKind<T[number]> {
  return textual(z.enum(values, { error: `one of ${values.join(", ")}` }), { placeholder, complete: values });
}

/** An http:// or https:// URL. */
export const httpUrl: FlagKind<URL> = textual(
  z.string({ error: WANT_TEXT }).transform((s, ctx) => {
    const url = URL.canParse(s) ? new URL(s) : undefined;
    if (url === undefined || (url.protocol !== "http:" && url.protocol !== "https:")) {
      ctx.addIssue({ code: "custom", message: "want an http:// or https:// URL" });
      return z.NEVER;
    }
    return url;
  }),
  { placeholder: "URL" },
);

/** A PostgreSQL connection URL, kept as text for the driver. */
export const postgresUrl: FlagKind<string> = textual(
  z.string({ error: WANT_TEXT }).refine((s) => {
    const url = URL.canParse(s) ? new URL(s) : undefined;
    return (url?.protocol === "postgres:" || url?.protocol === "postgresql:") && url.hostname !== "";
  }, "want a postgres://user@host:port/database URL"),
  { placeholder: "URL" },
);

/** A listen address, "host:port" or "[v6]:port". */
export const listenAddress: FlagKind<{ host: string; port: number }> = textual(
  z.string({ error: WANT_TEXT }).transform((s, ctx) => {
    const i = s.lastIndexOf(":");
    const host = s.slice(0, i).replace(/^\[|\]$/g, "");
    const port = Number(s.slice(i + 1));
    if (i <= 0 || s.slice(i + 1) === "" || !Number.isInteger(port) || port < 0 || port > 65535) {
      ctx.addIssue({ code: "custom", message: "want HOST:PORT, e.g. 127.0.0.1:3000" });
      return z.NEVER;
    }
    return { host, port };
  }),
  { placeholder: "HOST:PORT" },
);

/** A repeatable flag of text values; "a,b" in the environment, a list in the file. */
export function listOf(element: z.ZodType<string, string>, placeholder: string): FlagKind<string[]> {
  const list = z.array(element, { error: "want a list" });
  return {
    text: z.string().transform((s) => s.split(",").map((x) => x.trim()).filter((x) => x !== "")).pipe(list),
    file: list,
    repeatable: true,
    placeholder,
  };
}

/** A process count: a whole number of at least 1, or "auto" for every core this process may use. */
export const processCount: FlagKind<number> = textual(
  z.string({ error: WANT_TEXT }).transform((s, ctx) => {
    if (s === "auto") return availableParallelism();
    const n = /^\d+$/.test(s) ? Number(s) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
      ctx.addIssue({ code: "custom", message: "want auto or a whole number of at least 1" });
      return z.NEVER;
    }
    return n;
  }),
  { placeholder: "N" },
);

/**
 * The RPC protocol inside an agent tunnel. One kind for every command that takes `--protocol`
 * (a config file key has one meaning); a command that speaks fewer says so when run.
 */
export const tunnelProtocol = oneOf(["connect", "grpc", "drpc"], "PROTOCOL");

/** A rate per second: "500/s" or "500". */
export const perSecond: FlagKind<number> = textual(
  z.string({ error: WANT_TEXT }).transform((s, ctx) => {
    const m = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(s.trim());
    const n = m ? Number(m[1]) : NaN;
    if (!(n > 0)) {
      ctx.addIssue({ code: "custom", message: "want a rate above zero like 500/s" });
      return z.NEVER;
    }
    return n;
  }),
  { placeholder: "RATE" },
);
