import ArgumentParser

@main
struct FerryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ferry-bench",
        abstract: "Benchmarks Ferry against reference tools on the same machine, in one run.",
        subcommands: [CoreBenchmark.self, SyncBenchmark.self, WebhookBenchmark.self, ThroughputBenchmark.self, LoadBenchmark.self, LeakBenchmark.self, DashboardBenchmark.self, LongPollBenchmark.self, ScaleOutBenchmark.self])
}
