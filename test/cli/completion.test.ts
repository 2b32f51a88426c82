import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { runCli } from "../support/cli.js";

function has(shell: string): boolean {
  try {
    execFileSync(shell, ["-c", "true"]);
    return true;
  } catch {
    return false;
  }
}

function run(shell: string, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(shell, ["-c", script], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

/** Words typed so far (the last one being completed) → what the shell should offer. */
const CASES: [string[], string[]][] = [
  [["sta"], ["status"]],
  [["workspace", "b"], ["build"]],
  [["serve", "--log-l"], ["--log-level"]],
  [["serve", "--log-level", ""], ["trace", "debug", "info", "warn", "error", "fatal", "silent"]],
  [["workspace", "build", "--sp"], ["--spec"]],
  [["status", "--logs", ""], []],
];

describe("agentgate completion", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentgate-completion-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("bash: commands, subcommands, flags and flag values", async () => {
    const r = await runCli(["completion", "bash"]);
    assert.equal(r.code, 0, r.stderr);
    const script = join(dir, "agentgate.bash");
    await writeFile(script, r.stdout);
    for (const [typed, offered] of CASES) {
      const words = ["agentgate", ...typed].map((w) => `'${w}'`).join(" ");
      const out = await run("bash", `source ${script}; COMP_WORDS=(${words}); COMP_CWORD=${typed.length}; _agentgate; printf '%s\\n' "\${COMPREPLY[@]}"`);
      assert.deepEqual(out.split("\n").filter((l) => l !== ""), offered, typed.join(" "));
    }
  });

  test("zsh: the same, with descriptions", { skip: has("zsh") ? false : "zsh is not installed" }, async () => {
    const r = await runCli(["completion", "zsh"]);
    assert.equal(r.code, 0, r.stderr);
    const script = join(dir, "_agentgate");
    await writeFile(script, r.stdout);
    // compinit's completion functions print what they were given instead of offering it.
    const stubs = `autoload -U compinit && compinit -u; source ${script}; _describe() { print -l -- "\${(@P)4}" }; compadd() { shift; print -l -- "$@" }; _files() { print FILES }`;
    for (const [typed, offered] of CASES) {
      const words = ["agentgate", ...typed].map((w) => `'${w}'`).join(" ");
      const out = await run("zsh", `${stubs}; words=(${words}); CURRENT=${typed.length + 1}; _agentgate`);
      const names = out.split("\n").filter((l) => l !== "").map((l) => l.replace(/(?<!\\):.*$/, ""));
      const last = typed[typed.length - 1]!;
      assert.deepEqual(names.filter((n) => n.startsWith(last)), offered, typed.join(" "));
    }
  });
});
