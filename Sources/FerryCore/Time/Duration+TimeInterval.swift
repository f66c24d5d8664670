import Foundation

extension Duration {
    /// In seconds with their fraction: for a rate, a date or a message.
    public var timeInterval: TimeInterval { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
