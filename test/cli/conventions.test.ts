import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { closedPort } from "../support/closed-port.js";
import { helpOptionItems, runCli } from "../support/cli.js";

/** Every command with its own help, as `agentgate help` and `agentgate workspace help` list them. */
const COMMANDS = ["serve", "migrate", "workspace", "workspace create", "workspace build", "workspace show", "workspace list", "workspace delete", "status", "agent", "completion"];

describe("CLI conventions", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "agentgate-conventions-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("--help, -h and help <command> print the same usage on stdout and exit 0, for every command", async () => {
    await Promise.all(COMMANDS.map(async (command) => {
      const words = command.split(" ");
      const helpCommand = words.length === 1 ? ["help", ...words] : [words[0]!, "help", ...words.slice(1)];
      const [long, short, viaHelp] = await Promise.all([runCli([...words, "--help"]), runCli([...words, "-h"]), runCli(helpCommand)]);
      for (const r of [long, short, viaHelp]) assert.deepEqual([r.code, r.stderr], [0, ""], command);
      assert.ok(long.stdout.startsWith(`Usage: agentgate ${command} `), long.stdout);
      assert.equal(short.stdout, long.stdout, command);
      assert.equal(viaHelp.stdout, long.stdout, command);
    }));
  });

  test("every flag's help names its environment variable, and the descriptions start in one column", async () => {
    const helps = await Promise.all(COMMANDS.filter((c) => c !== "workspace").map((c) => runCli([...c.split(" "), "--help"])));
    for (const { stdout } of helps) {
      for (const item of helpOptionItems(stdout).filter((i) => !i.startsWith("  -h, --help"))) {
        assert.match(item, /\(.*env: (AGENTGATE_[A-Z0-9_]+|DATABASE_URL)\)$/, item);
      }
      const starts = new Set(helpOptionItems(stdout).map((i) => /^ {2}\S.*?\s{2,}(?=\S)/.exec(i)![0].length));
      assert.equal(starts.size, 1, stdout);
    }
  });

  test("--version prints the package version", async () => {
    const { version } = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    const r = await runCli(["--version"]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `${version}\n`, ""]);
  });

  test("a mistyped command or flag is a usage error on stderr, exit 2, with a suggestion", async () => {
    const cases: [string[], string][] = [
      [["stauts"], "agentgate: unknown command 'stauts' (did you mean status?)\n"],
      [["workspace", "biuld"], "agentgate workspace: unknown command 'biuld' (did you mean build?)\n"],
      [["status", "--jsno"], "agentgate status: unknown option '--jsno' (did you mean --json?)\n"],
    ];
    for (const [args, stderr] of cases) {
      const r = await runCli(args);
      assert.deepEqual([r.code, r.stdout, r.stderr], [2, "", stderr], args.join(" "));
    }
  });

  test("a command without its subcommand prints its usage on stderr and exits 2", async () => {
    for (const args of [[], ["workspace"]]) {
      const r = await runCli(args);
      assert.deepEqual([r.code, r.stdout], [2, ""]);
      assert.match(r.stderr, /^Usage: agentgate /);
    }
  });

  test("bad flag values are one line on stderr naming the flag and what it wants, exit 2", async () => {
    const cases: [string[], string][] = [
      [["serve", "--log-level", "bogus"], "agentgate serve: invalid --log-level bogus (one of trace, debug, info, warn, error, fatal, silent)\n"],
      [["serve", "--database-url", "notaurl"], "agentgate serve: invalid --database-url: want a postgres://user@host:port/database URL\n"],
      [["serve", "--listen", "3000"], "agentgate serve: invalid --listen 3000 (want HOST:PORT, e.g. 127.0.0.1:3000)\n"],
      [["serve", "--agent-update-interval", "5x"], "agentgate serve: invalid --agent-update-interval 5x (want a duration like 500ms, 15s or 1m30s)\n"],
      [["serve", "--agent-update-interval", "10s", "--agent-inactive-timeout", "5s"], "agentgate serve: --agent-inactive-timeout must be at least --agent-update-interval\n"],
      [["serve", "--max-streams-per-agent", "0"], "agentgate serve: invalid --max-streams-per-agent 0 (want a whole number of at least 1)\n"],
      [["agent", "--url", "notaurl", "--token", "t"], "agentgate agent: invalid --url notaurl (want an http:// or https:// URL)\n"],
      [["agent"], "agentgate agent: --token is required (or set AGENTGATE_AGENT_TOKEN)\n"],
      [["workspace", "create", "--owner", "alice"], "agentgate workspace create: --name is required (or set AGENTGATE_NAME)\n"],
      [["workspace", "build"], "agentgate workspace build: missing required argument 'WORKSPACE'\n"],
      [["completion", "fish"], "agentgate completion: invalid SHELL fish (one of bash, zsh)\n"],
    ];
    await Promise.all(cases.map(async ([args, stderr]) => {
      const r = await runCli(args);
      assert.deepEqual([r.code, r.stdout, r.stderr], [2, "", stderr], args.join(" "));
    }));
  });

  test("a bad environment variable is named like a flag", async () => {
    const r = await runCli(["serve"], { AGENTGATE_LOG_LEVEL: "loud" });
    assert.deepEqual([r.code, r.stderr], [2, "agentgate serve: invalid AGENTGATE_LOG_LEVEL=loud (one of trace, debug, info, warn, error, fatal, silent)\n"]);
  });

  test("a database that is down is one line naming it, exit 1", async () => {
    const port = await closedPort();
    const r = await runCli(["migrate", "--database-url", `postgres://postgres:secret@127.0.0.1:${port}/agentgate`]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", `agentgate migrate: cannot reach the database at 127.0.0.1:${port} (connection refused)\n`]);
  });

  test("a server that is down is one line naming it, exit 1", async () => {
    const port = await closedPort();
    const r = await runCli(["status", "--url", `http://127.0.0.1:${port}`, "--admin-token", "t"]);
    assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", `agentgate status: cannot reach the server at http://127.0.0.1:${port} (connection refused)\n`]);
  });

  test("status and workspace commands with no server and no database say so and create nothing", async () => {
    const empty = join(dir, "empty");
    const missing = join(dir, "missing");
    await mkdir(empty);
    for (const args of [["status"], ["status", "alice/dev"], ["workspace", "list"], ["workspace", "show", "alice/dev"], ["workspace", "build", "alice/dev"]]) {
      for (const dataDir of [empty, missing]) {
        const r = await runCli([...args, "--data-dir", dataDir]);
        assert.deepEqual([r.code, r.stdout], [1, ""], args.join(" "));
        assert.equal(
          r.stderr,
          `agentgate ${args.slice(0, args[0] === "workspace" ? 2 : 1).join(" ")}: no database: no server runs on ${dataDir} and there is no database in it (start one with agentgate serve, or give --url or --database-url)\n`,
        );
      }
    }
    assert.deepEqual(await readdir(empty), []);
    assert.equal((await readdir(dir)).includes("missing"), false);
  });

  describe("config file", () => {
    test("an unknown key or a bad value is a usage error naming the key and the file", async () => {
      const cases: [string, string, string][] = [
        ["typo.yaml", "lisen: 127.0.0.1:3000\n", "config file FILE: unknown key lisen (keys are flag names without --)"],
        ["bad.yaml", "log-level: loud\n", "invalid log-level loud in FILE (one of trace, debug, info, warn, error, fatal, silent)"],
        ["bad.json", '{"block-direct-connections": "yes"}', "invalid block-direct-connections yes in FILE (want true or false)"],
        ["list.yaml", "- a\n", "config file FILE: want a mapping of flag names to values"],
        ["broken.json", "{", "config file FILE: not JSON: "],
      ];
      for (const [name, text, message] of cases) {
        const file = join(dir, name);
        await writeFile(file, text);
        const r = await runCli(["serve", "--config", file]);
        assert.equal(r.code, 2, r.stderr);
        assert.equal(r.stderr.split("\n").length, 2, r.stderr);
        assert.ok(r.stderr.startsWith(`agentgate serve: ${message.replace("FILE", file)}`), r.stderr);
      }
    });

    test("deploy/agentgate.yaml validates: the first error is a flag's, not the file's", async () => {
      const file = new URL("../../deploy/agentgate.yaml", import.meta.url).pathname;
      const r = await runCli(["serve", "--config", file, "--agent-inactive-timeout", "1s"]);
      assert.deepEqual([r.code, r.stderr], [2, "agentgate serve: --agent-inactive-timeout must be at least --agent-update-interval\n"]);
    });

    test("a missing config file is a usage error", async () => {
      const r = await runCli(["status", "--config", join(dir, "nope.yaml")]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^agentgate status: config file .*nope\.yaml: ENOENT/);
    });
  });
});
