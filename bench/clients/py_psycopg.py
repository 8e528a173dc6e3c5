"""Runner: psycopg 3 with psycopg_pool's AsyncConnectionPool, connections in autocommit (as the other clients run
single statements); `async with pool.connection()` + `conn.execute("SELECT 1")`; the transaction through
`conn.transaction()`. Defaults otherwise (server-side prepare after 5 executions)."""
import asyncio

from psycopg_pool import AsyncConnectionPool

from py_common import run


class Driver:
    def __init__(self, pool):
        self.pool = pool

    async def query(self):
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT 1")
            await cur.fetchone()

    async def transaction(self, id):
        async with self.pool.connection() as conn:
            async with conn.transaction():
                await conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (id,))
                cur = await conn.execute("SELECT balance FROM accounts WHERE id = %s", (id,))
                await cur.fetchone()

    async def warm(self, n):
        async def one():
            async with self.pool.connection() as conn:
                await conn.execute("SELECT pg_sleep(0.05)")
        await asyncio.gather(*(one() for _ in range(n)))

    def pool_info(self):
        stats = self.pool.get_stats()
        return {"poolSize": stats.get("pool_size"), "idle": stats.get("pool_available")}

    async def close(self):
        await self.pool.close(timeout=2)


async def make_driver(args):
    pool = AsyncConnectionPool(
        args.url, min_size=args.pool_min, max_size=args.pool_max, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True, timeout=30)
    return Driver(pool)


if __name__ == "__main__":
    run(make_driver)
