import { onOff } from "../config/flag-kinds.js";
import { flag } from "../config/flag.js";

/** `--json`, as every command that prints a result takes it. */
export const jsonFlag = { json: flag(onOff, { help: "print JSON instead of text" }) };
