import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";

/**
 * Reads a JSON or YAML file (`.yaml` and `.yml` are YAML, anything else JSON) into plain values.
 * Failures become `fail("<what> <path>: not JSON: …")`, one line naming the file.
 */
export async function readStructuredFile(path: string, what: string, fail: (message: string) => Error): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw fail(`${what} ${path}: ${(err as Error).message}`);
  }
  const yaml = [".yaml", ".yml"].includes(extname(path).toLowerCase());
  try {
    // An empty YAML file is an empty mapping, not null.
    return yaml ? (parseYaml(text) ?? {}) : JSON.parse(text);
  } catch (err) {
    throw fail(`${what} ${path}: not ${yaml ? "YAML" : "JSON"}: ${(err as Error).message.split("\n")[0]}`);
  }
}
