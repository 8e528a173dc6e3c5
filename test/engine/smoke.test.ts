import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"

describe("smoke", () => {
  it.effect("TestClock moves", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 second")
      assert.strictEqual(1, 1)
    }))
})
