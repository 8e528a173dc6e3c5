/**
 * An indexed binary min-heap: nodes remember their position, so removing a served waiter is O(log n) and the heap
 * never holds more than the live waiters. With one pool-wide timeout, waiters arrive in deadline order and leave
 * mostly from the top, so both push and remove are usually O(1).
 *
 * @internal
 */
export interface HeapNode {
  deadline: number
  /** Position in the heap, -1 when not in it. */
  heapIndex: number
}

export class Heap<T extends HeapNode> {
  private readonly items: Array<T> = []

  get size(): number {
    return this.items.length
  }

  peek(): T | undefined {
    return this.items[0]
  }

  push(node: T): void {
    node.heapIndex = this.items.length
    this.items.push(node)
    this.up(node.heapIndex)
  }

  remove(node: T): boolean {
    const i = node.heapIndex
    if (i < 0 || this.items[i] !== node) return false
    const last = this.items.pop()!
    node.heapIndex = -1
    if (last !== node) {
      this.items[i] = last
      last.heapIndex = i
      this.down(i)
      this.up(last.heapIndex)
    }
    return true
  }

  private up(i: number): void {
    const items = this.items
    const node = items[i]
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent].deadline <= node.deadline) break
      items[i] = items[parent]
      items[i].heapIndex = i
      i = parent
    }
    items[i] = node
    node.heapIndex = i
  }

  private down(i: number): void {
    const items = this.items
    const n = items.length
    const node = items[i]
    while (true) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && items[right].deadline < items[left].deadline ? right : left
      if (items[child].deadline >= node.deadline) break
      items[i] = items[child]
      items[i].heapIndex = i
      i = child
    }
    items[i] = node
    node.heapIndex = i
  }
}
