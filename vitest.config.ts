import { configDefaults, defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: "main",
          include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/faults/**"],
          // Starts one PostgreSQL server for the run (or uses DATABASE_URL) and
          // provides its URL as `inject("databaseUrl")`.
          globalSetup: ["./test/support/globalSetup.ts"]
        }
      },
      {
        extends: true,
        test: {
          // Fault injection (test/faults): each scenario starts its own PostgreSQL server and asserts timings, so
          // the files run one at a time, after the rest of the suite.
          name: "faults",
          include: ["test/faults/**/*.test.ts"],
          fileParallelism: false,
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
