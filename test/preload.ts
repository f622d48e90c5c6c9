// Loaded before every test file (bunfig.toml): one teardown for the whole run.
import { afterAll } from "bun:test";
import { removeTempDirs } from "./helpers/tmp.ts";

afterAll(removeTempDirs);
