import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { helpOptionItems, runCli } from "../support/cli.js";

const COMMANDS = ["serve", "migrate", "workspace create", "workspace build", "workspace show", "workspace list", "workspace delete", "status", "agent", "scaletest"];

/** `--flag <VALUE>`, its environment variable and its default as `--help` prints them. */
function helpFlags(help: string): { flag: string; env: string; default: string }[] {
  return helpOptionItems(help).filter((i) => !i.includes("--help")).map((item) => {
    const [, flag, facts] = /^ {2}(--\S+(?: <[^>]+>)?)\s.*\((.*)\)$/.exec(item)!;
    return { flag: flag!, env: /env: (\S+)$/.exec(facts!)![1]!, default: /default: (.*?)(?:, (?:repeatable|env):)/.exec(facts!)?.[1] ?? "" };
  });
}

test("the README's flag tables give every flag of every command with its environment variable and default, as --help does", async () => {
  const readme = await readFile(new URL("../../README.md", import.meta.url), "utf8");
  const rows = readme.split("\n").filter((l) => l.startsWith("| `--")).map((l) => l.split(" | ").map((c) => c.replace(/^\| /, "").replaceAll("`", "")));
  const helps = await Promise.all(COMMANDS.map((c) => runCli([...c.split(" "), "--help"], { COLUMNS: "200" })));
  for (const [i, { stdout }] of helps.entries()) {
    for (const f of helpFlags(stdout)) {
      const row = rows.find((r) => r[0] === f.flag && r[1] === f.env && r[2] === (f.default || (f.flag.includes("<") ? "–" : "off")));
      assert.ok(row, `README has no row for ${COMMANDS[i]} ${f.flag} (${f.env}, default ${f.default || "none"})`);
    }
  }
});
