import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import * as MockConnector from "../../src/testing/MockConnector.ts"
import { at, fork, makePool, readyAt } from "./helpers2.ts"

describe("leak detection", () => {
  it.effect("a connection held longer than leakThreshold is reported once, naming the span that acquired it", () => {
    const entries: Array<{ level: string; message: string }> = []
    const logger = Logger.make((options) => {
      const message = Array.isArray(options.message) ? options.message.map(String).join(" ") : String(options.message)
      entries.push({ level: options.logLevel, message })
    })
    return Effect.gen(function*() {
      const mock = yield* MockConnector.make({ connectLatency: "100 millis" })
      const pool = yield* makePool(mock.connector, { minSize: 2, leakThreshold: "1 second" })
      yield* readyAt(pool, 100)
      // Held 500 ms: under the threshold, nothing said.
      yield* fork(pool.withConnection(() => Effect.sleep(500)))
      // Held 3 s: reported at exactly 1 s after it was acquired, once.
      yield* fork(pool.withConnection(() => Effect.sleep(3000)).pipe(Effect.withSpan("monthly-report")))
      yield* at(1099)
      assert.strictEqual(entries.filter((e) => e.level === "Warn").length, 0)
      yield* at(1100)
      const warnings = entries.filter((e) => e.level === "Warn")
      assert.strictEqual(warnings.length, 1)
      assert.include(warnings[0].message, "held for more than 1000 ms")
      assert.include(warnings[0].message, 'in span "monthly-report"')
      yield* at(5000)
      assert.strictEqual(entries.filter((e) => e.level === "Warn").length, 1)
    }).pipe(Effect.provide(Logger.layer([logger])))
  })
})
