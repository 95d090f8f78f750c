/// A fixed-capacity buffer that forgets its oldest elements: all dashboard history is
/// kept in these, so memory does not grow with the length of a run.
public struct Ring<Element: Sendable>: Sendable {
    public let capacity: Int
    private var storage: [Element] = []
    private var head = 0  // index of the oldest element once full

    public init(capacity: Int) {
        precondition(capacity > 0, "a ring needs room for at least one element")
        self.capacity = capacity
        storage.reserveCapacity(capacity)
    }

    public var count: Int { storage.count }
    public var isEmpty: Bool { storage.isEmpty }

    public mutating func append(_ element: Element) {
        if storage.count < capacity {
            storage.append(element)
        } else {
            storage[head] = element
            head = (head + 1) % capacity
        }
    }

    /// Oldest first.
    public var elements: [Element] {
        guard head > 0 else { return storage }
        return Array(storage[head...] + storage[..<head])
    }

    /// The newest `n`, oldest of them first.
    public func suffix(_ n: Int) -> [Element] {
        let all = elements
        return Array(all.suffix(max(0, n)))
    }

    public var last: Element? {
        guard !storage.isEmpty else { return nil }
        return storage[(head + storage.count - 1) % storage.count]
    }

    /// Changes the newest element in place.
    public mutating func updateLast(_ change: (inout Element) -> Void) {
        guard !storage.isEmpty else { return }
        change(&storage[(head + storage.count - 1) % storage.count])
    }

    public mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        head = 0
    }
}
