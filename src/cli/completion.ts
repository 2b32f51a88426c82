import { UsageError } from "../config/usage-error.js";
import { defineCommand, type CommandSpec } from "./command-spec.js";

/** A command as shells complete it: its subcommands and its options. */
export interface CompletionNode {
  readonly name: string;
  readonly summary: string;
  readonly commands: readonly CompletionNode[];
  readonly options: readonly CompletionOption[];
}

/** One option: its spellings, its help, and what follows it. */
export interface CompletionOption {
  readonly names: readonly string[];
  readonly help: string;
  readonly takesValue: boolean;
  /** Words to offer for its value, or file names. */
  readonly complete?: readonly string[] | "file";
}

const SHELLS = ["bash", "zsh"] as const;

/** `agentgate completion bash|zsh`: prints a completion script for the command tree `tree()` gives. */
export function completionCommand(tree: () => CompletionNode): CommandSpec {
  return defineCommand({
    name: "completion",
    summary: "print a shell completion script (bash or zsh)",
    description: [
      "Prints a completion script for agentgate's commands, flags and flag values.",
      "  bash: source <(agentgate completion bash)      (e.g. in ~/.bashrc)",
      "  zsh:  source <(agentgate completion zsh)       (e.g. in ~/.zshrc, after compinit)",
    ].join("\n"),
    args: [{ name: "SHELL", help: SHELLS.join(" or ") }],
    async run({ args }) {
      const shell = args[0]!;
      if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`invalid SHELL ${shell} (one of ${SHELLS.join(", ")})`);
      process.stdout.write(shell === "zsh" ? zshScript(tree()) : bashScript(tree()));
    },
  });
}

/** Each command's path ("", "/workspace", "/workspace/build") with its node. */
function paths(node: CompletionNode, at = ""): [string, CompletionNode][] {
  return [[at, node], ...node.commands.flatMap((c) => paths(c, `${at}/${c.name}`))];
}

/** `case` arms that follow the command words typed so far down the tree. */
function descendArms(root: CompletionNode): string {
  const known = paths(root).map(([p]) => p).filter((p) => p !== "");
  return `      ${known.join("|")}) at="$at/$word" ;;`;
}

/** `case "$at $prev"` arms for options that take a value: their words, file names, or nothing. */
function valueArms(root: CompletionNode, words: (w: readonly string[]) => string, files: string, nothing: string): string[] {
  return paths(root).flatMap(([p, node]) =>
    node.options.filter((o) => o.takesValue).map((o) => {
      const pattern = o.names.map((n) => `"${p} ${n}"`).join("|");
      const action = o.complete === undefined ? nothing : o.complete === "file" ? files : words(o.complete);
      return `    ${pattern}) ${action}; return ;;`;
    }),
  );
}

function bashScript(root: CompletionNode): string {
  const arms = paths(root).map(([p, node]) => `    "${p}") words="${[...node.commands.map((c) => c.name), ...node.options.flatMap((o) => o.names)].join(" ")}" ;;`);
  return `# agentgate completion for bash: source <(agentgate completion bash)
_agentgate() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} at="" word words i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=\${COMP_WORDS[i]}
    case "$at/$word" in
${descendArms(root)}
    esac
  done
  case "$at $prev" in
${valueArms(root, (w) => `COMPREPLY=($(compgen -W "${w.join(" ")}" -- "$cur"))`, `COMPREPLY=($(compgen -f -- "$cur"))`, "COMPREPLY=()").join("\n")}
  esac
  case "$at" in
${arms.join("\n")}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _agentgate agentgate
`;
}

/** A single-quoted zsh word. */
function quote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

function zshScript(root: CompletionNode): string {
  const describe = (name: string, help: string) => quote(`${name.replaceAll(":", "\\:")}:${help}`);
  const arms = paths(root).map(([p, node]) => {
    const items = [...node.commands.map((c) => describe(c.name, c.summary)), ...node.options.flatMap((o) => o.names.map((n) => describe(n, o.help)))];
    return `    "${p}") candidates=(${items.join(" ")}) ;;`;
  });
  return `#compdef agentgate
# agentgate completion for zsh: source <(agentgate completion zsh), or save as _agentgate in $fpath
_agentgate() {
  local at="" word i
  local -a candidates
  for ((i = 2; i < CURRENT; i++)); do
    word=\${words[i]}
    case "$at/$word" in
${descendArms(root)}
    esac
  done
  case "$at \${words[CURRENT-1]}" in
${valueArms(root, (w) => `compadd -- ${w.map(quote).join(" ")}`, "_files", ":").join("\n")}
  esac
  case "$at" in
${arms.join("\n")}
  esac
  _describe -t commands agentgate candidates
}
if [ "$funcstack[1]" = "_agentgate" ]; then _agentgate "$@"; else compdef _agentgate agentgate; fi
`;
}
