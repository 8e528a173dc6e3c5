"""Runner: asyncpg's Pool (`asyncpg.create_pool`). `pool.fetchval("SELECT 1")`; the transaction through
`conn.transaction()` on `pool.acquire()`. Defaults otherwise (statement cache on, reset on release)."""
import asyncpg

from py_common import run


class Driver:
    def __init__(self, pool):
        self.pool = pool

    async def query(self):
        await self.pool.fetchval("SELECT 1")

    async def transaction(self, id):
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = $1", id)
                await conn.fetchval("SELECT balance FROM accounts WHERE id = $1", id)

    async def warm(self, n):
        import asyncio
        await asyncio.gather(*(self.pool.fetchval("SELECT pg_sleep(0.05)") for _ in range(n)))

    def pool_info(self):
        return {"poolSize": self.pool.get_size(), "idle": self.pool.get_idle_size()}

    async def close(self):
        await self.pool.close()


async def make_driver(args):
    pool = await asyncpg.create_pool(args.url, min_size=args.pool_min, max_size=args.pool_max)
    return Driver(pool)


if __name__ == "__main__":
    run(make_driver)
