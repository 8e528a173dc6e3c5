/**
 * An intrusive doubly-linked FIFO. Nodes carry their own links, so push, shift and removal from the middle are O(1)
 * and allocate nothing: the idle queue and the waiter queue sit on the acquire/release path.
 *
 * @internal
 */
export interface Node<T extends Node<T>> {
  prev: T | undefined
  next: T | undefined
  /** The list the node is on, so a stale removal is a no-op. */
  list: List<T> | undefined
}

export class List<T extends Node<T>> {
  head: T | undefined = undefined
  tail: T | undefined = undefined
  length = 0

  push(node: T): void {
    node.list = this
    node.prev = this.tail
    node.next = undefined
    if (this.tail === undefined) this.head = node
    else this.tail.next = node
    this.tail = node
    this.length++
  }

  shift(): T | undefined {
    const node = this.head
    if (node !== undefined) this.remove(node)
    return node
  }

  remove(node: T): boolean {
    if (node.list !== this) return false
    if (node.prev === undefined) this.head = node.next
    else node.prev.next = node.next
    if (node.next === undefined) this.tail = node.prev
    else node.next.prev = node.prev
    node.prev = node.next = node.list = undefined
    this.length--
    return true
  }

  /** A copy, for loops that remove while they walk. */
  toArray(): Array<T> {
    const out: Array<T> = []
    for (let node = this.head; node !== undefined; node = node.next) out.push(node)
    return out
  }
}
